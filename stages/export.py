"""Stage `export`: a trained student as exports/S.onnx and exports/S.pt (TorchScript), with its preprocessing."""
from __future__ import annotations

from pathlib import Path

from pipeline import layout
from pipeline.io import atomic_path
from pipeline.export import export_onnx, export_torchscript, preprocessing
from pipeline.models.weights import load_student
from pipeline.params import load_params


def export(name: str, params_path: Path) -> str:
    """Write the student's ONNX and TorchScript files (its first training seed's network); return where they are."""
    params = load_params(params_path)
    net, checkpoint = load_student(layout.student_weights(name, params.training_seeds()[0]))
    meta = preprocessing(checkpoint, params.evaluate.scales)
    paths = [layout.export(name, ".onnx"), layout.export(name, ".pt")]
    for path, write in zip(paths, (export_onnx, export_torchscript)):
        with atomic_path(path) as tmp:
            write(net, meta, tmp)
    return f"exported {name} ({meta['arch']}, {meta['dim']}-d): {paths[0]} and {paths[1]}"
