"""An exported student gives the PyTorch student's descriptors under onnxruntime and TorchScript."""
from pathlib import Path

import numpy as np
import onnxruntime
import torch
import yaml

from pipeline.data.dataset import ImageListDataset, eval_transform, make_loader
from pipeline.data.listfile import read_list
from pipeline.models.backbones import create
from pipeline.export import onnx_metadata, torchscript_metadata
from stages.export import export
from tests import test_resume
from tests.test_resume import PARAMS

project = test_resume.project  # a prepared list of digit images in a temporary folder


def test_onnx_and_torchscript_give_the_students_descriptors_on_real_images(project, monkeypatch):
    (project / "params.yaml").write_text(yaml.safe_dump({**PARAMS, "students": {"s": {"method": "fitnet", "teacher": "t"}}}))
    torch.manual_seed(0)
    net = create("resnet18", 8).eval()
    (project / "data/students/s").mkdir(parents=True)
    torch.save({"arch": "resnet18", "dim": 8, "image_size": 32, "method": "fitnet", "teacher": "t",
                "state_dict": net.state_dict()}, project / "data/students/s/seed-0.pt")
    monkeypatch.chdir(project)
    message = export("s", Path("params.yaml"))
    assert message == "exported s (resnet18, 8-d): exports/s.onnx and exports/s.pt"
    image_list = read_list(project / "data/prepared/list.csv")
    loader = make_loader(ImageListDataset(image_list.paths, image_list.labels, np.arange(12), eval_transform(32)), 6, 0)
    session = onnxruntime.InferenceSession(str(project / "exports/s.onnx"))
    scripted = torch.jit.load(str(project / "exports/s.pt"))
    for images, _, _ in loader:
        with torch.no_grad():
            expected = net(images).numpy()
            traced = scripted(images).numpy()
        onnx_out = session.run(None, {"images": images.numpy()})[0]
        assert np.abs(onnx_out - expected).max() <= 1e-4 and np.abs(traced - expected).max() <= 1e-4
    small = torch.randn(3, 3, 24, 40)  # any batch and image size, the same descriptors as the PyTorch student
    with torch.no_grad():
        expected, traced = net(small).numpy(), scripted(small).numpy()
    onnx_out = session.run(None, {"images": small.numpy()})[0]
    assert onnx_out.shape == (3, 8) and np.abs(onnx_out - expected).max() <= 1e-4 and np.abs(traced - expected).max() <= 1e-4
    # What a caller needs, written out here from the checkpoint and params above (not from the exporter's dict)
    expected_meta = {
        "arch": "resnet18", "method": "fitnet", "teacher": "t", "dim": 8, "image_size": 32,
        "resize": "longer side to image_size, aspect ratio kept, antialiased", "color": "RGB",
        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
        "input": "float32 (B, 3, H, W), (x / 255 - mean) / std", "pooling": "GeM p=3", "l2_normalised": True,
        "scales": [1.0], "multiscale": "describe the image resized by each scale (bilinear, antialiased), "
                                       "l2-normalise each, average, l2-normalise"}
    assert onnx_metadata(project / "exports/s.onnx") == expected_meta
    assert torchscript_metadata(project / "exports/s.pt") == expected_meta


def test_the_torchscript_file_does_not_depend_on_the_name_it_is_written_under(tmp_path):
    """The export stage writes under a temporary name, then renames: two runs must give the same bytes."""
    import subprocess
    import sys
    script = ("import sys, torch; from pipeline.models.backbones import create; "
              "from pipeline.export import export_torchscript; torch.manual_seed(0); "
              "export_torchscript(create('resnet18', 8), {'image_size': 16}, sys.argv[1])")
    for name in ("one.pt", ".one.pt.partial-123"):  # each in its own process, as each stage run is
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True, capture_output=True,
                       cwd=Path(__file__).resolve().parents[1])
    assert (tmp_path / "one.pt").read_bytes() == (tmp_path / ".one.pt.partial-123").read_bytes()
