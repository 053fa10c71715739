"""Kill -9 in the middle of a stage, rerun, and get exactly the uninterrupted result."""
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from pipeline.data.listfile import read_list
from pipeline.models.backbones import create
from pipeline.models.weights import load_student
from pipeline.train.validation import validation_scorer

RDISTILL = str(Path(sys.executable).parent / "rdistill")

PARAMS = {
    "prepare": {"limit": 160, "n_train": 80},
    "whiten": {"n_components": 16},  # what 80 training images can span (the schema's 512 is for real photos)
    "teachers": {"t": {"arch": "resnet18", "image_size": 32}},
    "extract": {"scales": [1.0, 0.5], "batch_size": 8, "chunk_size": 16},
}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    subprocess.run([RDISTILL, "prepare"], cwd=tmp_path, check=True, capture_output=True)
    torch.manual_seed(0)
    (tmp_path / "data/teachers").mkdir(parents=True)
    torch.save(create("resnet18").state_dict(), tmp_path / "data/teachers/t.pt")
    return tmp_path


def run_killed_after(cmd, cwd, scratch: Path, n_chunks: int) -> None:
    """Start `cmd`, SIGKILL it once `n_chunks` chunk files exist in `scratch`."""
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if len(list(scratch.glob("chunk-*.h5"))) >= n_chunks:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the stage finished before it could be killed"


def extracted_counts(stderr: str) -> tuple[int, int]:
    done, todo = re.search(r"(\d+) of \d+ items \(images and views\) already extracted, extracting (\d+)", stderr).groups()
    return int(done), int(todo)


def test_killed_extraction_resumes_from_the_last_complete_chunk(project):
    scratch = project / "data/.partial/extract-t"
    run_killed_after([RDISTILL, "extract", "t"], project, scratch, n_chunks=3)
    assert not (project / "data/features/t.h5").exists()  # nothing half-written was published
    # a half-written chunk (as a kill during a write leaves) is never trusted
    (scratch / ".chunk-000099.h5.partial-1").write_bytes(b"\x89HDF garbage")
    resumed = subprocess.run([RDISTILL, "extract", "t"], cwd=project, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    done, todo = extracted_counts(resumed.stderr)
    assert done >= 3 * 16 and done + todo == 160 and todo > 0
    assert not scratch.exists()
    resumed_bytes = (project / "data/features/t.h5").read_bytes()

    (project / "data/features/t.h5").unlink()
    clean = subprocess.run([RDISTILL, "extract", "t"], cwd=project, capture_output=True, text=True)
    assert extracted_counts(clean.stderr) == (0, 160)
    with h5py.File(project / "data/features/t.h5") as a, h5py.File(io_bytes(resumed_bytes, project)) as b:
        assert np.array_equal(a["features"][()], b["features"][()])
    assert (project / "data/features/t.h5").read_bytes() == resumed_bytes


def io_bytes(data: bytes, folder: Path) -> Path:
    path = folder / "resumed_copy.h5"
    path.write_bytes(data)
    return path


def test_scratch_from_other_settings_is_discarded(project):
    scratch = project / "data/.partial/extract-t"
    run_killed_after([RDISTILL, "extract", "t"], project, scratch, n_chunks=2)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["extract"]["scales"] = [1.0]
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    rerun = subprocess.run([RDISTILL, "extract", "t"], cwd=project, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert extracted_counts(rerun.stderr) == (0, 160)


def fake_teacher_cache(project: Path, dim: int = 8, k: int = 4) -> None:
    """Whitened features and neighbours with valid provenance, so that `train` can run without a teacher."""
    from pipeline.data.h5 import feature_writer, write_arrays
    from pipeline.data.listfile import read_list
    from pipeline.io import sha256_file
    image_list = read_list(project / "data/prepared/list.csv")
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((len(image_list), dim)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    attrs = {"teacher": "t", "list_sha256": sha256_file(project / "data/prepared/list.csv"), "weights_sha256": "00"}
    with feature_writer(project / "data/whitened/t.h5", image_list.ids, attrs) as writer:
        writer.write(np.arange(len(feats)), feats)
    train = image_list.train_rows()
    neighbours = np.stack([np.roll(train, -s)[:len(train)] for s in range(1, k + 1)], axis=1)
    write_arrays(project / "data/neighbours/t.h5", {"rows": train, "indices": neighbours}, attrs)


def epoch_log(folder: Path, metric: str = "loss") -> list[tuple[int, float]]:
    """(step, value) rows of a DVCLive folder's series of `metric`."""
    rows = list(csv.DictReader((folder / f"plots/metrics/{metric}.tsv").read_text().splitlines(), delimiter="\t"))
    return [(int(r["step"]), float(r[metric])) for r in rows]


def kill_once_written(cmd, cwd, checkpoint: Path) -> None:
    """Start `cmd`, SIGKILL it as soon as `checkpoint` exists (training saves one after every epoch)."""
    process = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while process.poll() is None and not checkpoint.exists():
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training finished before it could be killed"


def assert_same_weights(resumed: dict, clean: dict) -> None:
    """Bit-for-bit equal state dicts."""
    assert resumed.keys() == clean.keys()
    for key in clean:
        assert torch.equal(resumed[key], clean[key]), key


def test_killed_training_resumes_from_its_checkpoint_with_identical_weights(project):
    # weight averaging over epochs 2 and 4: the running average is part of the resumed state too
    # validation mAP after epoch 2 and of the final network (epoch 4): logged as steps 1 and 3
    params = {**PARAMS, "prepare": {**PARAMS["prepare"], "validation": 16},
              "runtime": {"workers": 2},  # persistent workers erasing at random: the resumed run must draw the same
              "train": {"student": {"arch": "resnet18", "image_size": 16, "random_erasing": 0.5}, "eval_every": 2,
                        "override": {"epochs": 4, "batch_size": 16, "average": [0.5, 1.0]},
                        "csd": {"k": 4, "variant": "kl"}},
              "mine": {"k": 4}, "students": {"s": {"method": "csd", "teacher": "t"}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    subprocess.run([RDISTILL, "prepare"], cwd=project, check=True, capture_output=True)
    fake_teacher_cache(project)
    scratch = project / "data/.partial/train-s"
    kill_once_written([RDISTILL, "train", "s"], project, scratch / "checkpoint-seed-0.pt")
    resumed = subprocess.run([RDISTILL, "train", "s"], cwd=project, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming from .*checkpoint-seed-0.pt after epoch [1-3] of 4", resumed.stderr)
    assert not scratch.exists()
    resumed_weights = torch.load(project / "data/students/s/seed-0.pt", weights_only=True)["state_dict"]
    resumed_log = epoch_log(project / "dvclive/train/s/seed-0")
    assert [step for step, _ in resumed_log] == [0, 1, 2, 3]  # the restored epochs replayed, then the rest
    resumed_validation_log = epoch_log(project / "dvclive/train/s/seed-0", "val_map")
    shutil.copy(project / "data/students/s/seed-0.pt", project / "resumed.pt")

    shutil.rmtree(project / "data/.partial/seeds")  # else the seed's student is reused, not trained again
    clean = subprocess.run([RDISTILL, "train", "s"], cwd=project, capture_output=True, text=True)
    assert clean.returncode == 0 and "resuming" not in clean.stderr
    clean_weights = torch.load(project / "data/students/s/seed-0.pt", weights_only=True)["state_dict"]
    assert epoch_log(project / "dvclive/train/s/seed-0") == resumed_log  # the same series, step by step
    validation_log = epoch_log(project / "dvclive/train/s/seed-0", "val_map")
    assert [step for step, _ in validation_log] == [1, 3]
    assert validation_log == resumed_validation_log
    net, checkpoint = load_student(project / "data/students/s/seed-0.pt")
    image_list = read_list(project / "data/prepared/list.csv")
    final = validation_scorer(image_list, checkpoint["image_size"], [1.0], 256, torch.device("cpu"))(net)
    assert validation_log[-1][1] == pytest.approx(final, abs=1e-6)  # the final, weight-averaged student's
    assert resumed_log == [(r["epoch"] - 1, r["loss"]) for r in json.loads((project / "metrics/train/s.json").read_text())["history"]]
    assert_same_weights(resumed_weights, clean_weights)


def test_killed_teacher_training_with_workers_resumes_with_identical_weights(project):
    # Persistent workers: the loader draws their base seed from its generator when it starts them, which a
    # resumed run does again at its first epoch; the epoch order must not depend on it.
    params = {**PARAMS, "teachers": {"t": {"arch": "resnet18", "image_size": 16, "weights": "train"}},
              "teacher": {"epochs": 4, "batch_size": 16}, "runtime": {"workers": 2}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    scratch = project / "data/.partial/teacher-t"
    kill_once_written([RDISTILL, "teacher", "t"], project, scratch / "checkpoint.pt")
    resumed = subprocess.run([RDISTILL, "teacher", "t"], cwd=project, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert re.search(r"resuming from .*checkpoint.pt after epoch [1-3] of 4", resumed.stderr)
    resumed_weights = torch.load(project / "data/teachers/t.pt", weights_only=True)
    clean = subprocess.run([RDISTILL, "teacher", "t"], cwd=project, capture_output=True, text=True)
    assert clean.returncode == 0 and "resuming" not in clean.stderr
    clean_weights = torch.load(project / "data/teachers/t.pt", weights_only=True)
    assert_same_weights(resumed_weights, clean_weights)
    # and the workers take no part in the order: without them the teacher is the same
    (project / "params.yaml").write_text(yaml.safe_dump({**params, "runtime": {"workers": 0}}))
    subprocess.run([RDISTILL, "teacher", "t"], cwd=project, check=True, capture_output=True)
    assert_same_weights(torch.load(project / "data/teachers/t.pt", weights_only=True), clean_weights)


def test_interrupted_mining_resumes_from_finished_query_batches(project, monkeypatch, caplog):
    import logging

    import stages.mine as mine_stage
    params = {**PARAMS, "mine": {"index": "PQ4x4", "k": 5, "shortlist": 10, "batch_size": 8}, "train": {"csd": {"k": 5}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    fake_teacher_cache(project)
    monkeypatch.chdir(project)
    real, calls = mine_stage.neighbours_of, {"n": 0}

    def crash_after_three_batches(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 3:  # one call per query batch
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(mine_stage, "neighbours_of", crash_after_three_batches)
    with pytest.raises(KeyboardInterrupt):
        mine_stage.mine("t", Path("params.yaml"))
    assert len(list((project / "data/.partial/mine-t").glob("chunk-*.h5"))) == 3
    monkeypatch.setattr(mine_stage, "neighbours_of", real)
    with caplog.at_level(logging.INFO):
        mine_stage.mine("t", Path("params.yaml"))
    assert "3 of 10 query batches already done" in caplog.text
    resumed = (project / "data/neighbours/t.h5").read_bytes()
    mine_stage.mine("t", Path("params.yaml"))
    assert (project / "data/neighbours/t.h5").read_bytes() == resumed
    mined = json.loads((project / "metrics/mine/t.json").read_text())
    assert mined["refine"] == 8 and mined["recall_at_k"] >= mined["recall_at_k_index"]


def test_interrupted_refinement_resumes_from_finished_batches(project, monkeypatch, caplog):
    import logging

    import stages.mine as mine_stage
    params = {**PARAMS, "mine": {"index": "PQ4x4", "k": 5, "shortlist": 10, "batch_size": 8}, "train": {"csd": {"k": 5}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    fake_teacher_cache(project)
    monkeypatch.chdir(project)
    mine_stage.mine("t", Path("params.yaml"))
    whole = (project / "data/neighbours/t.h5").read_bytes()
    real, calls = mine_stage.refine_neighbours, {"n": 0}

    def crash_after_two_batches(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(mine_stage, "refine_neighbours", crash_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        mine_stage.mine("t", Path("params.yaml"))
    monkeypatch.setattr(mine_stage, "refine_neighbours", real)
    with caplog.at_level(logging.INFO):
        mine_stage.mine("t", Path("params.yaml"))
    assert "mine t: 10 of 10 query batches already done" in caplog.text
    assert "refine t: 2 of 10 query batches already done" in caplog.text
    assert (project / "data/neighbours/t.h5").read_bytes() == whole


def test_extraction_sharded_over_two_torchrun_ranks_equals_one_process(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["extract"]["views"] = 2  # the training images' augmented views are sharded too
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    single = subprocess.run([RDISTILL, "extract", "t"], cwd=project, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    expected = (project / "data/features/t.h5").read_bytes()
    (project / "data/features/t.h5").unlink()
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sharded = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "stages.cli", "extract", "t"],
                             cwd=project, capture_output=True, text=True, env=env, timeout=600)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    assert "(rank 0 of 2)" in sharded.stderr and "(rank 1 of 2)" in sharded.stderr
    assert (project / "data/features/t.h5").read_bytes() == expected
    assert not (project / "data/.partial/extract-t").exists()


def test_exact_mining_with_torch_gives_faiss_exact_lists(project, monkeypatch):
    import h5py

    import stages.mine as mine_stage
    fake_teacher_cache(project, dim=8)
    monkeypatch.chdir(project)
    lists = {}
    for index in ("Flat", "exact"):
        params = {**PARAMS, "mine": {"index": index, "k": 6, "batch_size": 16}, "train": {"csd": {"k": 6}}}
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        mine_stage.mine("t", Path("params.yaml"))
        with h5py.File(project / "data/neighbours/t.h5") as f:
            lists[index] = f["indices"][()], f["similarities"][()]
        mined = json.loads((project / "metrics/mine/t.json").read_text())
        assert (mined["index"], mined["recall_at_k"], mined["refine"]) == (index, 1.0, 0)
    assert np.array_equal(lists["exact"][0], lists["Flat"][0])
    assert np.allclose(lists["exact"][1], lists["Flat"][1], atol=1e-6)
