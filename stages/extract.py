"""Stage `extract`: multi-scale GeM features of every listed image by one teacher -> HDF5."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import layout
from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.h5 import feature_writer
from pipeline.features.extract import default_device, describe
from pipeline.io import sha256_file
from pipeline.models.registry import create
from pipeline.models.weights import load_state_dict, load_strict
from pipeline.params import load_params
from pipeline.provenance import library_versions
from pipeline.train.loop import seed_everything
from stages.common import declared, prepared_list


def extract(name: str, params_path: Path) -> None:
    """Write data/features/<name>.h5 with features, ids and provenance."""
    params = load_params(params_path)
    spec, p = declared(params.teachers, "teachers", name, params_path), params.extract
    seed_everything(params.seed)
    image_list, list_sha = prepared_list()
    weights = layout.teacher_weights(name)
    net = create(spec.arch, spec.dim)
    load_strict(net, load_state_dict(weights), str(weights))
    dataset = ImageListDataset(image_list.paths, image_list.labels, np.arange(len(image_list)),
                               eval_transform(spec.image_size), image_list.bboxes)
    attrs = {"teacher": name, "arch": spec.arch, "weights_sha256": sha256_file(weights), "scales": p.scales,
             "image_size": spec.image_size, "list_sha256": list_sha, "versions": library_versions()}
    loader = make_loader(dataset, p.batch_size, p.workers, by_shape=True)
    with feature_writer(layout.raw_features(name), image_list.ids, attrs, p.chunk_size) as writer:
        for rows, feats in describe(net, loader, p.scales, len(dataset), default_device(), desc=f"extract {name}"):
            writer.write(rows, feats)
