"""The path a team takes with its own photos, walked as the README tells it, against a real SSH remote.

JPEG files in class folders outside the repository; clone A starts the project with `rdistill init`,
runs `dvc repro`, commits and pushes features over SFTP (an SSH server on the loopback interface that
the test starts); clone B, at another depth and with the images at another path, pulls, reruns
nothing, trains a new student from the pulled features and runs a queued sweep; then an edited image,
a replaced checkpoint and changed worker counts rerun exactly what they reach.
"""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.test_pipeline_e2e import ALWAYS, PROJECT, ran_stages, sh

CLASSES, PER_CLASS = 3, 20


def write_photos(folder: Path) -> None:
    """CLASSES folders of PER_CLASS JPEG photos (scikit-learn's digits, enlarged to 48 px, in colour)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for label in range(CLASSES):
        (folder / f"class-{label}").mkdir(parents=True)
        for i, row in enumerate(np.flatnonzero(digits.target == label)[:PER_CLASS]):
            pixels = (digits.images[row] * 16).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).resize((48, 48)).convert("RGB").save(folder / f"class-{label}" / f"{i:03d}.jpg")


def write_checkpoint(path: Path, seed: int) -> None:
    """A torchvision ResNet-18 classifier's state dict, as a user's own checkpoint."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    torch.save(torchvision.models.resnet18().state_dict(), path)


def tiny(params_file: Path, weights: dict[str, Path], student_start: Path) -> None:
    """Shrink the params that `rdistill init` wrote to a configuration that runs in seconds."""
    params = yaml.safe_load(params_file.read_text())
    params["teachers"] = {name: {**params["teachers"]["resnet50"], "arch": "resnet18", "weights": str(path),
                                 "image_size": 32} for name, path in weights.items()}
    params["students"] = {"csd": {"method": "csd", "teacher": "r18"}}
    params["whiten"]["n_components"] = 8
    params["mine"].update({"index": "Flat", "k": 4, "shortlist": 0})
    params["train"]["csd"]["k"] = 4
    params["train"]["student"].update({"image_size": 16, "init": str(student_start)})
    params["train"]["override"].update({"epochs": 1, "batch_size": 8})
    params["extract"].update({"scales": [1.0], "batch_size": 16, "chunk_size": 16})
    params["verify"]["sample"] = 4
    params["evaluate"]["recall_at"] = [1]
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def project_copy(folder: Path) -> Path:
    """The project's files as a fresh clone has them."""
    folder.mkdir(parents=True)
    for entry in ("pipeline", "stages", "plots/templates"):
        shutil.copytree(PROJECT / entry, folder / entry, ignore=shutil.ignore_patterns("__pycache__"))
    for entry in ("dvc.yaml", "data/dvc.yaml", ".gitignore", ".dvcignore"):
        (folder / entry).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT / entry, folder / entry)
    return folder


@pytest.fixture(scope="module")
def ssh_remote(tmp_path_factory):
    """(remote URL, client key): an SFTP server on 127.0.0.1, serving a folder to the holder of the key."""
    import asyncssh

    folder = tmp_path_factory.mktemp("ssh")
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(folder / "id_ed25519")
    key.write_public_key(folder / "id_ed25519.pub")
    (folder / "served").mkdir()
    server = subprocess.Popen([sys.executable, "-m", "tests.sftp_server", folder / "served", folder / "port",
                               folder / "id_ed25519.pub"], cwd=PROJECT)
    deadline = time.monotonic() + 30
    while not (folder / "port").exists():
        assert server.poll() is None and time.monotonic() < deadline, "the SFTP server did not start"
        time.sleep(0.1)
    port = int((folder / "port").read_text())
    yield f"ssh://rdistill@127.0.0.1:{port}/rdistill-cache", folder / "id_ed25519", folder / "served"
    server.kill()
    server.wait()


def repro(cwd: Path) -> set[str]:
    return ran_stages(sh("dvc", "repro", cwd=cwd))


def wait_for_queue(cwd: Path) -> str:
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = sh("dvc", "queue", "status", cwd=cwd)
        if "Queued" not in status and "Running" not in status:
            return status
        time.sleep(3)
    raise AssertionError(f"queued experiments still running after 15 minutes:\n{status}")


@pytest.mark.slow
def test_own_photos_shared_over_ssh_from_two_clones(tmp_path, ssh_remote):
    url, key, served = ssh_remote
    photos, models = tmp_path / "photos", tmp_path / "models"
    write_photos(photos)
    models.mkdir()
    weights = {"r18": models / "r18.pth", "r18b": models / "r18b.pth"}
    for seed, path in enumerate([*weights.values(), models / "student-start.pth"]):
        write_checkpoint(path, seed)
    origin = tmp_path / "origin.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(origin), cwd=tmp_path)

    # Clone A: the README's "Your own data" and "Share features with your team", as written there.
    a = project_copy(tmp_path / "a")
    sh("git", "init", "-q", "-b", "main", cwd=a)
    sh("dvc", "init", "-q", cwd=a)
    sh("rdistill", "init", "--images", str(photos), cwd=a)
    tiny(a / "params.yaml", weights, models / "student-start.pth")
    sh("dvc", "remote", "add", "-d", "team", url, cwd=a)
    sh("dvc", "remote", "modify", "--local", "team", "keyfile", str(key), cwd=a)
    sh("git", "add", "-A", cwd=a)
    sh("git", "commit", "-qm", "rdistill on our photos", cwd=a)
    first = repro(a)
    assert ALWAYS | {"prepare", "teacher@r18", "extract@r18", "train@csd", "report"} <= first
    listed = (a / "data/prepared/list.csv").read_text()
    assert "class-0/000.jpg,0," in listed and str(tmp_path) not in listed  # ids relative to the root
    sh("git", "add", "-A", cwd=a)
    sh("git", "commit", "-qm", "teacher features", cwd=a)
    sh("dvc", "push", "--run-cache", cwd=a)
    sh("git", "remote", "add", "origin", str(origin), cwd=a)
    sh("git", "push", "-q", "origin", "main", cwd=a)
    assert any((served / "rdistill-cache").rglob("*")), "nothing reached the SSH remote"

    # Clone B: deeper, images copied elsewhere (other times), no checkpoints: nothing reruns but the checks.
    b = tmp_path / "b" / "two" / "levels" / "clone"
    sh("git", "clone", "-q", str(origin), str(b), cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere" / "pictures"
    shutil.copytree(photos, elsewhere, copy_function=shutil.copyfile)
    (b / "machine.yaml").write_text(f"prepare.root: {elsewhere}\n"  # B has none of A's checkpoints
                                        + "".join(f"teachers.{t}.weights: /nowhere/{t}.pth\n" for t in weights))
    sh("dvc", "remote", "modify", "--local", "team", "keyfile", str(key), cwd=b)
    sh("dvc", "pull", "--run-cache", cwd=b)
    assert repro(b) <= ALWAYS | {"environment"}
    assert sh("git", "status", "--porcelain", cwd=b) == ""  # fingerprints and dvc.lock as A committed them
    assert (b / "data/features/r18.h5").read_bytes() == (a / "data/features/r18.h5").read_bytes()

    # B trains a new student from the pulled features: no teacher stage runs.
    params = yaml.safe_load((b / "params.yaml").read_text())
    params["students"]["fitnet"] = {"method": "fitnet", "teacher": "r18"}
    (b / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert repro(b) == ALWAYS | {"train@fitnet", "evaluate@fitnet", "export@fitnet", "report"}
    sh("git", "add", "-A", cwd=b)
    sh("git", "commit", "-qm", "a FitNet student", cwd=b)

    # A sweep in B, queued and run in DVC's copies of the workspace (which find B's images).
    for k in (2, 3):
        sh("dvc", "exp", "run", "--queue", "-S", f"train.csd.k={k}", "-n", f"csd-k{k}", cwd=b)
    sh("dvc", "queue", "start", cwd=b)
    status = wait_for_queue(b)
    assert status.count("Success") == 2, status
    for k in (2, 3):
        log = sh("dvc", "queue", "logs", f"csd-k{k}", cwd=b)
        assert ran_stages(log) <= ALWAYS | {"environment", "train@csd", "evaluate@csd", "export@csd", "report"}, log
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=b))
    runs = {r.get("name"): r for rev in shown for e in (rev.get("experiments") or []) for r in (e.get("revs") or [])}
    assert {runs[f"csd-k{k}"]["data"]["params"]["params.yaml"]["data"]["train"]["csd"]["k"] for k in (2, 3)} == {2, 3}

    # Back in A: an edited image reruns prepare and what the list reaches; a second repro nothing.
    from PIL import Image
    edited = photos / "class-1" / "004.jpg"
    Image.eval(Image.open(edited), lambda v: 255 - v).save(edited)
    rerun = repro(a)
    assert ALWAYS | {"prepare", "extract@r18", "extract@r18b", "train@csd"} <= rerun
    assert repro(a) == ALWAYS

    # A replaced checkpoint reruns that teacher's stages only.
    write_checkpoint(weights["r18b"], seed=7)
    rerun = repro(a)
    assert {"teacher@r18b", "extract@r18b", "whiten@r18b"} <= rerun
    assert not rerun & {"prepare", "teacher@r18", "extract@r18", "train@csd"}

    # Students that start from a checkpoint retrain, and only they, when it is replaced.
    write_checkpoint(models / "student-start.pth", seed=12)
    assert repro(a) == ALWAYS | {"train@csd", "evaluate@csd", "export@csd", "report"}

    # Workers, memory budgets and timeouts change no output: nothing reruns.
    params = yaml.safe_load((a / "params.yaml").read_text())
    params["runtime"] = {"workers": 1, "image_cache_mb": 64, "timeout_minutes": 30}
    (a / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert repro(a) == ALWAYS
    (a / "machine.yaml").write_text("runtime.workers: 2\n")  # this machine's own setting, never committed
    assert repro(a) == ALWAYS
