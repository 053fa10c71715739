"""A validation split held out of the training split, following the test protocol: where the test images
share the training classes (the digits), held-out images of every class; where they do not (SOP, In-Shop,
re-id), held-out classes. Validation rows are never trained on; evaluation scores them beside the test."""
from __future__ import annotations

import numpy as np

VALIDATION = "val"


def validation_size(requested: float, n_train: int) -> int:
    """Images to hold out: `requested` itself when ≥ 1, a share of the training images when below 1."""
    return int(round(requested * n_train)) if requested < 1 else int(requested)


def holds_out_images(labels: np.ndarray, splits: np.ndarray) -> bool:
    """Whether validation holds out images of every class (the test shares the training classes), not whole classes."""
    labels, splits = np.asarray(labels), np.asarray(splits)
    test_classes = set(labels[splits != "train"].tolist()) - {-1}
    return bool(test_classes & set(labels[splits == "train"].tolist()))


def hold_out_validation(labels: np.ndarray, splits: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The splits with `size` training rows (about, for whole classes) relabelled `val`, seeded.

    Test classes among the training classes: a stratified sample of images (every class in proportion).
    Otherwise: whole classes drawn in a seeded order until `size` images are held out.
    """
    splits = np.asarray(splits).astype(object)
    train = np.flatnonzero(splits == "train")
    if size <= 0 or not len(train):
        return splits.astype(str)
    rng = np.random.default_rng([seed, 0x5A1])
    if holds_out_images(labels, splits):
        order = rng.permutation(train)
        share = np.empty(len(order))
        for cls in np.unique(labels[order]):  # each class's picks spread over its members: stratified
            members = labels[order] == cls
            share[members] = (np.arange(members.sum()) + 0.5) / members.sum()
        chosen = order[np.argsort(share, kind="stable")[:size]]
    else:
        classes = rng.permutation(np.unique(labels[train]))
        counts = np.array([(labels[train] == c).sum() for c in classes])
        keep = classes[:int(np.searchsorted(np.cumsum(counts), size)) + 1]
        chosen = train[np.isin(labels[train], keep)]
    splits[chosen] = VALIDATION
    return splits.astype(str)
