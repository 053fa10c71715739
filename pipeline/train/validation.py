"""Validation mAP while a network trains: the held-out `val` rows described and scored as `evaluate` scores
them (each validation image a query against the others, class protocol, revisited Oxford/Paris, Radenović et al., CVPR 2018)."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.listfile import ImageList
from pipeline.data.rows import SubsetRows
from pipeline.evaluate.protocols import score
from pipeline.features.extract import describe


def validation_scorer(image_list: ImageList, image_size: int, scales: Sequence[float], batch_size: int,
                      device: torch.device, workers: int = 0) -> Callable[[nn.Module], float] | None:
    """A function giving a network's symmetric validation mAP, or None when the list holds no validation rows
    (images decoded by `workers` processes, runtime.workers: on a GPU machine decoding is the slow part).

    The network is described in evaluation mode and left in training mode; the loader draws from its own
    generator, so scoring never moves the random numbers training draws from.
    """
    validation = image_list.validation()
    rows = validation.query_rows()
    if not len(rows):
        return None
    dataset = ImageListDataset(image_list.paths, image_list.labels, rows, eval_transform(image_size),
                               image_list.bboxes, decode_size=image_size)

    def validation_map(net: nn.Module) -> float:
        batches = list(describe(net, make_loader(dataset, batch_size, workers, by_shape=True), scales, len(rows), device,
                                desc="validation"))
        net.train()
        listed = np.concatenate([batch_rows for batch_rows, _ in batches])
        order = np.argsort(listed)  # by_shape batches group rows by image size
        features = np.concatenate([descriptors for _, descriptors in batches])[order]
        described = SubsetRows(features, listed[order], len(image_list))
        return score(validation, described, described, None, recall_at=(1,))["mAP"]

    return validation_map
