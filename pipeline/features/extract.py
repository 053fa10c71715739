"""Multi-scale global descriptors (GeM, Radenović et al., TPAMI 2018) of every image, streamed into HDF5."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from pipeline.data.h5 import feature_writer
from pipeline.models.pooling import l2n


def multiscale_descriptor(net: Callable[[Tensor], Tensor], images: Tensor, scales: Sequence[float]) -> Tensor:
    """GeM, Radenović et al., TPAMI 2018: describe `images` at each scale, l2n each, average, l2n again. (B,3,H,W) -> (B,D)."""
    height, width = images.shape[-2:]
    total = None
    for scale in scales:
        if scale == 1.0:
            resized = images
        else:
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            resized = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
        descriptor = l2n(net(resized))
        total = descriptor if total is None else total + descriptor
    return l2n(total)


@torch.no_grad()
def describe(net: torch.nn.Module, batches: Iterable, scales: Sequence[float], n_images: int,
             device: torch.device, desc: str = "extract"):
    """Yield (rows, descriptors) numpy pairs for batches of [(images, labels, rows), ...] groups.

    On CUDA the network runs in mixed precision on channels-last images; on CPU in float32.
    """
    cuda = device.type == "cuda"
    layout = torch.channels_last if cuda else torch.preserve_format
    net.eval().to(device, memory_format=layout)
    with tqdm(total=n_images, desc=desc, unit="img", mininterval=1.0) as bar:
        for groups in batches:
            for images, _labels, rows in groups:
                images = images.to(device, non_blocking=True, memory_format=layout)
                with torch.autocast(device.type, enabled=cuda):
                    descriptors = multiscale_descriptor(net, images, scales).float()
                if cuda:  # renormalise what half precision left slightly off unit length
                    descriptors = l2n(descriptors)
                yield rows.numpy(), descriptors.cpu().numpy()
                bar.update(len(rows))


def describe_to_file(net: torch.nn.Module, batches: Iterable, scales: Sequence[float], ids, n_described: int,
                     device: torch.device, path, desc: str = "extract", attrs: dict | None = None) -> None:
    """Write the descriptors of the batches' rows into a feature file at `path` (rows indexed as `ids`,
    unvisited rows left zero; `attrs` recorded with it), batch by batch: memory holds one batch, whatever
    the number of rows."""
    with feature_writer(path, ids, {"described_rows": n_described, **(attrs or {})}) as writer:
        for rows, feats in describe(net, batches, scales, n_described, device, desc):
            writer.write(rows, feats)
