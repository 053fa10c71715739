"""Stage `whiten`: PCA whitening learned on a teacher's training features, applied to all (Whiten-MTD, supplementary).

Both passes read the raw features block by block: memory is one block and the D×D statistics.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.data.h5 import feature_writer, write_arrays
from pipeline.data.sizes import check_components
from pipeline.params import load_params
from pipeline.provenance import library_versions, open_checked_features, require_attrs
from pipeline.whitening.pca import apply_whitening, learn_pca_blocks
from stages.common import prepared_list

log = logging.getLogger(__name__)


def whiten(name: str, params_path: Path) -> None:
    """Write data/whitening/<name>.h5 (mean, projection, eigenvalues) and data/whitened/<name>.h5."""
    params = load_params(params_path)
    p = params.whiten
    image_list, list_sha = prepared_list()
    source = layout.raw_features(name)
    train = image_list.train_rows()
    with open_checked_features(source, list_sha, name) as raw:
        check_components(p.n_components, len(train), raw.dim)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            w = learn_pca_blocks((block for _, block in raw.with_rows(train).blocks()), p.n_components, p.power,
                                 str(source))
        for warning in caught:
            log.warning("%s: %s", name, warning.message)
        attrs = {**require_attrs(source, raw.attrs, ("teacher", "arch", "weights_sha256", "list_sha256")),
                 "views": raw.attrs.get("views", 1), "seed": raw.attrs.get("seed", 0),
                 "whitening_source": str(source), "n_components": p.n_components, "power": p.power,
                 "n_train": int(len(train)), "n_informative": w.n_informative, "versions": library_versions()}
        write_arrays(layout.whitening(name), {"mean": w.mean, "projection": w.projection, "eigenvalues": w.eigenvalues},
                     attrs)
        view_rows = raw.view_rows()
        with feature_writer(layout.whitened_features(name), raw.ids_dataset(), attrs, view_rows=view_rows,
                            n_views=raw.n_views) as writer:
            for start, block in raw.blocks():
                writer.write(np.arange(start, start + len(block)), apply_whitening(w, block))
            for view in range(1, raw.n_views):
                for start, block in raw.views_plane(view).blocks():
                    writer.write_view(view, view_rows[start:start + len(block)], apply_whitening(w, block))
