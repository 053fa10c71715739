"""Scale benchmark: the real stage code on synthetic teacher features of N training rows (GLDv2 size at 1.6M).

The generator (the same at every N, so that only the size changes): images come in groups of 64
(a landmark's photos), each group in 4 clusters of 16 (a viewpoint). A group's centre is a random
256-d latent (unit variance), a cluster adds an offset of half that size, and both are mapped into
the 2048-d feature space by one fixed matrix with orthogonal rows, each latent direction carrying
8 times the variance of the isotropic image noise added on top; features are l2-normalised, and
an augmented view adds noise of norm 0.1 to the unit feature. After whitening to 512 dimensions the 63
other photos of a landmark are every image's nearest neighbours, well apart from other landmarks
at any N up to 1.6M, so recall@64 against exact search measures the index and not the data. The training split holds N rows (views: 2),
the evaluation split 2,000 `test` rows of other clusters. Evaluation's ranking is measured apart on
a gallery of G 512-d rows with 70 queries (revisited-style truth: 8 easy, 6 hard, 2 junk each).

Each stage runs in its own process (benchmarks/scale_stage.py) for its time and peak RSS; every
--rows run is appended to benchmarks/results/scale.json and the plot redrawn.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import typer
import yaml

from benchmarks.common import RESULTS, machine

GROUP = 64
CLUSTER = 16
LATENT = 256
SIGNAL = 8.0  # variance of a latent direction in feature space, in units of the per-dimension noise variance
VIEW_NOISE = 0.1
TEST_ROWS = 2000
STAGES = ("whiten", "mine", "train_targets", "evaluate_teacher", "evaluate_em")


def mixing_matrix(dim: int, seed: int) -> np.ndarray:
    """(LATENT, dim) with orthogonal rows of squared norm SIGNAL: the latent space inside the feature space
    (LATENT is capped at dim / 4 for the tiny dimensions of tests)."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, min(LATENT, dim // 4))))
    return (np.sqrt(SIGNAL) * q.T).astype(np.float32)


def latent_of(ids: np.ndarray, seed: int, scale: float, size: int) -> np.ndarray:
    """A size-d standard normal vector × scale per id, seeded by (seed, id): the same at any N."""
    unique, inverse = np.unique(ids, return_inverse=True)
    vectors = np.stack([np.random.default_rng([seed, int(i)]).standard_normal(size, dtype=np.float32) for i in unique])
    return scale * vectors[inverse]


def features_of(rows: np.ndarray, mixing: np.ndarray, rng: np.random.Generator, seed: int) -> np.ndarray:
    """l2-normalised features of image rows (groups and clusters follow from the row number)."""
    size = mixing.shape[0]
    latent = latent_of(rows // GROUP, seed, 1.0, size) + latent_of(rows // CLUSTER, seed + 1, 0.5, size)
    x = latent @ mixing + rng.standard_normal((len(rows), mixing.shape[1]), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_project(root: Path, rows: int, dim: int, block: int = 32768, components: int = 512,
                 index: str = "auto") -> None:
    """A project folder holding the list, params and raw features of `rows` training images, written block by block."""
    from pipeline.data.h5 import feature_writer
    from pipeline.data.listfile import write_list
    from pipeline.io import sha256_file
    n = rows + TEST_ROWS
    labels = np.arange(n) // GROUP
    splits = ["train"] * rows + ["test"] * TEST_ROWS
    write_list(root / "data/prepared/list.csv", [f"img/{i}.jpg" for i in range(n)], labels.tolist(), splits)
    params = {"teachers": {"t": {"arch": "resnet50", "image_size": 32}},
              "whiten": {"n_components": min(components, dim), "power": 0.5},
              "mine": {"index": index, "k": 64, "shortlist": 256, "nprobe": "auto", "batch_size": 1024},
              "evaluate": {"recall_at": [1, 5, 10]}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    attrs = {"teacher": "t", "arch": "resnet50", "weights_sha256": "0" * 64,
             "list_sha256": sha256_file(root / "data/prepared/list.csv"), "views": 2, "seed": 0}
    mixing = mixing_matrix(dim, 1)
    rng = np.random.default_rng(2)
    train = np.arange(rows)
    with feature_writer(root / "data/features/t.h5", [f"img/{i}.jpg" for i in range(n)], attrs,
                        chunk_rows=512, view_rows=train, n_views=2) as writer:
        for start in range(0, n, block):
            stop = min(start + block, n)
            feats = features_of(np.arange(start, stop), mixing, rng, 3)
            writer.write(np.arange(start, stop), feats)
            if start < rows:
                keep = min(stop, rows) - start
                view = feats[:keep] + VIEW_NOISE / np.sqrt(dim) * rng.standard_normal((keep, dim), dtype=np.float32)
                writer.write_view(1, train[start:start + keep], view / np.linalg.norm(view, axis=1, keepdims=True))


def make_gallery(path: Path, rows: int, dim: int = 512, block: int = 65536) -> None:
    """G gallery rows of the same generator at dim (a whitened-size gallery)."""
    from pipeline.data.h5 import feature_writer
    if path.is_file():
        return
    mixing = mixing_matrix(dim, 4)
    rng = np.random.default_rng(5)
    with feature_writer(path, [str(i) for i in range(rows)], {"teacher": "gallery"}, chunk_rows=512) as writer:
        for start in range(0, rows, block):
            stop = min(start + block, rows)
            writer.write(np.arange(start, stop), features_of(np.arange(start, stop), mixing, rng, 6))


def run_stage(root: Path, stage: str, *args: str) -> dict:
    """One stage in its own process: its printed JSON figures."""
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "benchmarks.scale_stage", stage, *args], cwd=root, check=True,
                          capture_output=True, text=True, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {stage}: {figures['seconds']:.1f} s, peak RSS {figures['peak_rss_gib']:.2f} GiB", flush=True)
    return figures


def plot(runs: list[dict], path: Path) -> None:
    """Time and peak RSS against N, log-log, one line per stage."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = sorted(runs, key=lambda r: r["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for stage in (*STAGES, "evaluate"):
        n = [r["rows"] for r in runs if stage in r["stages"]]
        for ax, key in zip(axes, ("seconds", "peak_rss_gib")):
            ax.plot(n, [r["stages"][stage][key] for r in runs if stage in r["stages"]], marker="o", label=stage)
    for ax, label in zip(axes, ("seconds", "peak RSS (GiB)")):
        ax.set_xscale("log"), ax.set_yscale("log"), ax.set_xlabel("training rows N"), ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("rdistill stages on synthetic 2048-d teacher features (evaluate: 70 queries, gallery G)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(rows: list[int] = typer.Option([100_000], help="training rows; repeat for several runs"),
         gallery: int = typer.Option(1_000_000, help="gallery rows G of the evaluation ranking"),
         dim: int = 2048, work: Path = typer.Option(RESULTS / "scale-work", help="scratch folder for the data"),
         results: Path = typer.Option(RESULTS, help="folder of scale.json and scale.png"),
         draw: bool = typer.Option(True, "--plot/--no-plot", help="draw scale.png"),
         index: str = typer.Option("auto", help="mine.index of the generated project (a FAISS factory string)")) -> None:
    """Run every stage at each --rows and append the figures to <results>/scale.json."""
    results.mkdir(parents=True, exist_ok=True)
    result_path = results / "scale.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {"runs": []}
    gallery_path = work / f"gallery-{gallery}.h5"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    make_gallery(gallery_path, gallery)
    print(f"gallery of {gallery} rows ready ({time.perf_counter() - start:.0f} s)", flush=True)
    for n in rows:
        root = work / f"rows-{n}"
        shutil.rmtree(root, ignore_errors=True)
        (root / "data").mkdir(parents=True)
        start = time.perf_counter()
        make_project(root, n, dim, index=index)
        print(f"N = {n}: features written ({time.perf_counter() - start:.0f} s)", flush=True)
        stages = {stage: run_stage(root, stage) for stage in STAGES}
        stages["evaluate"] = run_stage(root, "evaluate", "--gallery", str(gallery_path))
        run = {"rows": n, "dim": dim, "gallery": gallery, "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "generator": {"group": GROUP, "cluster": CLUSTER, "latent": LATENT, "signal": SIGNAL, "view_noise": VIEW_NOISE, "views": 2, "test_rows": TEST_ROWS},
               "stages": stages}
        result["runs"] = [r for r in result["runs"] if (r["rows"], r["gallery"]) != (n, gallery)] + [run]
        result["machine"] = machine()
        result_path.write_text(json.dumps(result, indent=2) + "\n")
        shutil.rmtree(root, ignore_errors=True)
    if draw:
        plot(result["runs"], results / "scale.png")


if __name__ == "__main__":
    typer.run(main)
