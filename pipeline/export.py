"""A trained student out of the project: ONNX and TorchScript files that carry its preprocessing.

Both take normalised float32 RGB images (B, 3, H, W) of any size and return l2-normalised descriptors
(B, D) at one scale; the metadata says how to prepare images and how the project combines scales.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from pipeline.data.dataset import IMAGENET_MEAN, IMAGENET_STD

METADATA_KEY = "rdistill"  # ONNX metadata_props key, and the TorchScript extra file rdistill.json


def preprocessing(checkpoint: dict, scales: list[float]) -> dict:
    """What a caller must do around the exported network to get the project's descriptors."""
    pool = checkpoint.get("pool", "gem")
    return {"arch": checkpoint["arch"], "method": checkpoint.get("method"), "teacher": checkpoint.get("teacher"),
            "dim": checkpoint["dim"], "image_size": checkpoint["image_size"],
            "resize": "longer side to image_size, aspect ratio kept, antialiased", "color": "RGB",
            "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "input": "float32 (B, 3, H, W), (x / 255 - mean) / std",
            "pooling": "GeM p=3" if pool == "gem" else f"timm {pool}", "l2_normalised": True,
            "scales": list(scales),
            "multiscale": "describe the image resized by each scale (bilinear, antialiased), l2-normalise each, "
                          "average, l2-normalise"}


def example_input(image_size: int) -> torch.Tensor:
    """A batch of two images at the student's input size, for tracing and export."""
    return torch.randn(2, 3, image_size, image_size)


def export_onnx(net: nn.Module, meta: dict, path: str | Path) -> None:
    """Write `net` as ONNX (any batch size and image size) with `meta` in its metadata."""
    import onnx

    example = example_input(meta["image_size"])
    batch, height, width = torch.export.Dim("batch"), torch.export.Dim("height", min=8), torch.export.Dim("width", min=8)
    with contextlib.redirect_stdout(sys.stderr):  # the exporter reports its steps on stdout
        program = torch.onnx.export(net.eval(), (example,), dynamo=True, input_names=["images"],
                                    output_names=["descriptors"],
                                    dynamic_shapes={"x": {0: batch, 2: height, 3: width}}, verbose=False)
    model = program.model_proto
    model.metadata_props.add(key=METADATA_KEY, value=json.dumps(meta, sort_keys=True))
    onnx.save(model, str(path))


def export_torchscript(net: nn.Module, meta: dict, path: str | Path) -> None:
    """Write `net` as a traced TorchScript module with `meta` as its extra file rdistill.json."""
    with warnings.catch_warnings():  # torch says TorchScript is deprecated; libtorch and torch.jit.load still load it
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(net.eval(), example_input(meta["image_size"]))
        # Saved through a buffer: saved to a path, the archive's inner folder takes the file's name, so the
        # same model written under two temporary names would give two different files.
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(meta, sort_keys=True)})
    Path(path).write_bytes(buffer.getvalue())


def onnx_metadata(path: str | Path) -> dict:
    """The preprocessing stored in an exported ONNX file."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(props[METADATA_KEY])


def torchscript_metadata(path: str | Path) -> dict:
    """The preprocessing stored in an exported TorchScript file."""
    extra = {f"{METADATA_KEY}.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra[f"{METADATA_KEY}.json"])
