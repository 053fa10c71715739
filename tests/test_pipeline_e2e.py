"""End to end: `dvc repro` on a tiny config in a temporary git+dvc repository."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]

TINY = {
    "prepare": {"limit": 240, "n_train": 120, "validation": 20},  # 100 training, 20 validation, 120 test images
    "teachers": {
        "r18": {"arch": "resnet18", "weights": "train", "dim": None, "image_size": 16},
        "mnv3": {"arch": "mobilenet_v3_small", "weights": "train", "dim": 32, "image_size": 16},
    },
    "teacher": {"epochs": 1, "batch_size": 32},
    "extract": {"scales": [1.0, 0.5], "batch_size": 64, "chunk_size": 64, "views": 2},
    "whiten": {"n_components": 8},
    "mine": {"index": "PQ4x4", "k": 8, "shortlist": 16},
    "train": {"student": {"arch": "resnet18", "image_size": 16}, "override": {"epochs": 1, "batch_size": 32},
              "seeds": [0, 1],
              "csd": {"k": 8}, "whiten_mtd": {"pairs": "views"}},
    "students": {"csd": {"method": "csd", "teacher": "r18"}, "no_distill": {"method": "no_distill", "teacher": "r18"}},
    "ensembles": {"mtd": {"method": "whiten_mtd", "gallery": "mnv3"}},
    "verify": {"sample": 8},
}


def merge(base: dict, override: dict) -> dict:
    for key, value in override.items():
        base[key] = merge(base.get(key, {}), value) if isinstance(value, dict) and key not in ("teachers", "students", "ensembles") else value
    return base


def sh(*cmd, cwd):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


VERIFY = {"verify@r18", "verify@mnv3"}  # rerun when the features, the teacher or the machine's environment change


ALWAYS = {"data/dvc.yaml:inputs"}  # fingerprints the files outside the repository at every repro


def changed(status: str) -> set[str]:
    """Stages `dvc status --json` lists, less those that are always changed."""
    return set(json.loads(status)) - ALWAYS


def ran_stages(repro_output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", repro_output))


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    for entry in ("pipeline", "stages", "plots/templates"):
        shutil.copytree(PROJECT / entry, root / entry, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "dvc.yaml", root / "dvc.yaml")
    (root / "data").mkdir()
    shutil.copy(PROJECT / "data/dvc.yaml", root / "data/dvc.yaml")  # the inputs stage
    shutil.copy(PROJECT / ".gitignore", root / ".gitignore")  # data/environment.json is never committed
    params = merge(yaml.safe_load((PROJECT / "params.yaml").read_text()), TINY)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=root)
    sh("dvc", "init", "-q", cwd=root)
    sh("dvc", "config", "core.analytics", "false", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "the project", cwd=root)  # a clone's state: DVCLive reads the repository's commits
    out = sh("dvc", "repro", cwd=root)
    return root, out


@pytest.mark.slow
def test_repro_runs_every_stage_and_writes_the_table(repo):
    root, out = repo
    expected = {"prepare", "teacher@r18", "teacher@mnv3", "extract@r18", "extract@mnv3", "whiten@r18",
                "whiten@mnv3", "mine@r18", "mine@mnv3", "train@csd", "train@no_distill", "evaluate@csd",
                "evaluate@no_distill", "evaluate-teacher@r18", "evaluate-teacher@mnv3", "report",
                "train-multi@mtd", "evaluate-multi@mtd", "evaluate-em", *VERIFY, "export@csd", "export@no_distill",
                "export-multi@mtd", "environment", *ALWAYS}
    assert ran_stages(out) == expected
    table = (root / "reports/results.md").read_text()
    assert "teacher r18" in table and "asymmetric" in table and "no_distill" in table
    assert "csd (resnet18, csd) | asymmetric (→ r18 gallery)" in table
    assert "| EM (r18 + mnv3) | ensemble mean" in table and "mtd (resnet18, whiten_mtd from r18 + mnv3) | symmetric" in table
    assert "no_distill (resnet18, no_distill) | asymmetric" not in table
    em = json.loads((root / "metrics/eval_ensemble/EM.json").read_text())
    assert em["teachers"] == ["r18", "mnv3"] and 0 < em["diagnostics"]["EM"]["view_mrr"] <= 1
    # the angle diagnostic (a sample of 20,000 pairs) against every pair of the whitened training rows
    import h5py
    import numpy as np
    from pipeline.data.listfile import read_list
    train = read_list(root / "data/prepared/list.csv").train_rows()
    with h5py.File(root / "data/whitened/r18.h5") as f:
        whitened = f["features"][:][train]
    cos = (whitened @ whitened.T)[~np.eye(len(train), dtype=bool)]
    angles = em["diagnostics"]["r18"]["angles"]
    assert angles["var_cos"] == pytest.approx(cos.var(), rel=0.1) and angles["mean_cos"] == pytest.approx(cos.mean(), abs=0.02)
    csd = json.loads((root / "metrics/eval/csd.json").read_text())
    assert csd["symmetric"]["queries"] == 120 and csd["validation"]["symmetric"]["queries"] == 20
    assert csd["validation"]["asymmetric"]["mAP"] > 0 and "| val mAP |" in table
    # What a user relies on, with margins for library drift (measured: teacher 0.78, CSD 0.56, no_distill
    # 0.46; a random ranking of 10 balanced classes scores about 0.1)
    teacher = json.loads((root / "metrics/eval_teacher/r18.json").read_text())["whitened"]["mAP"]
    assert teacher > 0.5
    assert csd["asymmetric"]["mAP"] > 0.5 * teacher
    assert json.loads((root / "metrics/eval/no_distill.json").read_text())["symmetric"]["mAP"] > 0.25
    curve = json.loads((root / "plots/pr/csd.json").read_text())["pr"]
    assert {c["setting"] for c in curve} == {"symmetric", "asymmetric"} and len(curve) == 2 * 21
    assert (root / "plots/grid/csd.png").stat().st_size > 0
    assert json.loads((root / "plots/loss/mtd.json").read_text())["loss"][0]["epoch"] == 1
    shown = sh("dvc", "plots", "show", "--json", cwd=root)
    assert "plots/loss/csd.json" in shown and "plots/pr/csd.json" in shown
    mined = json.loads((root / "metrics/mine/r18.json").read_text())
    assert mined["recall_at_k"] > 0.9  # shortlist of 16 re-ranked exactly
    checked = json.loads((root / "metrics/verify/mnv3.json").read_text())
    assert checked["passed"] and checked["min_cosine"] > 0.99999 and checked["views"] == 4
    assert "## Cached features recomputed on this machine" in table and "| mnv3 | 8 | " in table
    assert "| params (M) | GFLOPs | ms/image |" in table and "![mAP against GFLOPs per image](../plots/tradeoff.png)" in table
    assert (root / "plots/tradeoff.png").stat().st_size > 0 and "plots/tradeoff.png" in shown
    assert (root / "exports/csd.onnx").stat().st_size > 0 and (root / "exports/mtd.pt").stat().st_size > 0
    # two seeds per student: seed intervals in the table, paired differences from per-query AP
    comparison = json.loads((root / "metrics/comparison.json").read_text())
    assert comparison["csd"]["symmetric"]["over"] == "seeds" and comparison["csd"]["symmetric"]["seeds"] == 2
    assert {"diff", "low", "high", "excludes_zero"} <= set(comparison["csd"]["symmetric"]["vs_no_distill"])
    assert "vs_teacher" in comparison["csd"]["asymmetric"] and "vs_no_distill" not in comparison["no_distill"]["symmetric"]
    assert csd["seeds"] == [0, 1] and csd["symmetric"]["mAP"] == pytest.approx(comparison["csd"]["symmetric"]["mAP"])
    assert "| mAP 95% interval |" in table and "vs no_distill" in table and "conditional on them" in table
    assert sorted(p.name for p in (root / "data/students/csd").iterdir()) == ["seed-0.pt", "seed-1.pt"]
    for folder in ("dvclive/train/csd/seed-0", "dvclive/train/csd/seed-1", "dvclive/teacher/r18"):  # one epoch each
        steps = (root / folder / "plots/metrics/loss.tsv").read_text().splitlines()
        assert steps[0].split("\t") == ["step", "loss"] and [r.split("\t")[0] for r in steps[1:]] == ["0"]


@pytest.mark.slow
def test_every_dvc_plot_renders_with_one_series_per_student_or_setting(repo):
    """What `dvc plots show` draws, rendered without a browser (vl-convert): each Vega-Lite spec becomes a PNG,
    and each chart holds the series it should (every student in the comparison charts, one line per setting
    in a student's precision-recall chart)."""
    import vl_convert
    root, _ = repo
    shown = json.loads(sh("dvc", "plots", "show", "--json", cwd=root))
    assert not shown.get("errors"), shown.get("errors")
    expected = {"plots/compare/loss.json": {"csd", "no_distill", "mtd"},
                "plots/compare/pr_symmetric.json": {"csd", "no_distill", "mtd"},
                "plots/compare/pr_asymmetric.json": {"csd → r18"},  # whiten_mtd learns no teacher's space
                "plots/pr/csd.json": {"symmetric", "asymmetric"}, "plots/pr/no_distill.json": {"symmetric"},
                "plots/pr/mtd.json": {"symmetric"}}
    rendered = set()
    for name, items in shown["data"].items():
        for item in items:
            if item["type"] != "vega":
                continue
            spec = item["content"]
            png = vl_convert.vegalite_to_png(json.dumps(spec))
            assert png.startswith(b"\x89PNG") and len(png) > 5000, name
            values = spec["data"]["values"]
            if spec["encoding"].get("color", {}).get("field") == "series":
                assert {v["series"] for v in values} == expected[name], name
            else:  # DVC's own template: one series per file and field
                assert len({(v.get("rev"), v.get("filename"), v.get("field")) for v in values}) == 1, name
            rendered.add(name)
    assert set(expected) <= rendered and "plots/loss/csd.json" in rendered


def lock_hashes(root: Path) -> dict[str, str]:
    """md5 of every stage output recorded in dvc.lock (training logs and the report carry timings: excluded)."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])
            if not out["path"].startswith(("metrics/train/", "metrics/teacher/", "reports/", "plots/tradeoff.png",
                                           "dvclive/"))}


@pytest.mark.slow
def test_second_clone_pulls_features_and_extracts_nothing(repo, tmp_path):
    root, _ = repo
    remote = tmp_path / "remote"
    sh("dvc", "remote", "add", "-d", "team", str(remote), cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "pipeline run", "--allow-empty", cwd=root)
    sh("dvc", "push", "--run-cache", cwd=root)
    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(root), str(clone), cwd=tmp_path)
    sh("dvc", "pull", "--run-cache", cwd=clone)
    # never cached nor committed: the verify stages wait for this machine's environment
    assert changed(sh("dvc", "status", "--json", cwd=clone)) == {"environment", *VERIFY}
    # the same machine: its environment is the one recorded, so the pulled cache has nothing to be checked against
    out = sh("dvc", "repro", cwd=clone)
    assert ran_stages(out) == {"environment", *ALWAYS}, out
    assert changed(sh("dvc", "status", "--json", cwd=clone)) == set()
    # another machine: the environment dvc.lock records (the committer's) differs from the one written here
    lock = (clone / "dvc.lock").read_text()
    (recorded,) = set(re.findall(r"path: data/environment.json\n\s+hash: md5\n\s+md5: (\w+)", lock))
    (clone / "dvc.lock").write_text(lock.replace(recorded, "d41d8cd98f00b204e9800998ecf8427e"))  # another md5
    out = sh("dvc", "repro", cwd=clone)
    assert ran_stages(out) == {"environment", *VERIFY, *ALWAYS}  # the pulled features are checked here; nothing else runs
    assert (clone / "data/features/r18.h5").read_bytes() == (root / "data/features/r18.h5").read_bytes()


@pytest.mark.slow
def test_cached_views_are_the_teachers_features_of_the_seeded_views(repo):
    import numpy as np
    import torch
    from pipeline.data.dataset import eval_transform, normalize_batch
    from pipeline.data.decode import load_rgb
    from tests.reference import read_features
    from pipeline.data.listfile import read_list
    from pipeline.data.views import SeededView
    from pipeline.features.extract import multiscale_descriptor
    from pipeline.models.backbones import create

    root, _ = repo
    features = read_features(root / "data/features/r18.h5")
    image_list = read_list(root / "data/prepared/list.csv")
    assert np.array_equal(features.view_rows, image_list.train_rows()) and features.views.shape[:2] == (1, 100)
    net = create("resnet18", None)
    net.load_state_dict(torch.load(root / "data/teachers/r18.pt", weights_only=True))
    net.eval()
    view = SeededView(16, 0, eval_transform(16))
    for j in (0, 77):
        row = int(features.view_rows[j])
        image = load_rgb(image_list.paths[row])
        with torch.no_grad():
            expected = multiscale_descriptor(net, normalize_batch(view(image, row, 1)[None]), [1.0, 0.5])[0].numpy()
        assert np.allclose(features.views[0, j], expected, atol=1e-5)
        assert not np.allclose(features.views[0, j], features.features[row], atol=1e-3)
    whitened = read_features(root / "data/whitened/r18.h5")
    assert whitened.views.shape == (1, 100, 8)


@pytest.mark.slow
def test_a_changed_train_parameter_reruns_only_downstream_stages_in_a_queued_experiment(repo):
    """A parameter change reruns exactly what it touches, run the DVC way (the README's sweep): queued,
    started, and read back beside the workspace with `dvc exp show`."""
    root, _ = repo
    assert changed(sh("dvc", "status", "--json", cwd=root)) == set()
    params_text = (root / "params.yaml").read_text()
    params = yaml.safe_load(params_text)
    params["train"]["csd"]["k"] = 4
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert changed(sh("dvc", "status", "--json", cwd=root)) == {"train@csd"}
    (root / "params.yaml").write_text(params_text)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "before the sweep", "--allow-empty", cwd=root)
    sh("dvc", "exp", "run", "--queue", "-S", "train.csd.k=4", "-n", "csd-k4", cwd=root)
    sh("dvc", "queue", "start", cwd=root)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = sh("dvc", "queue", "status", cwd=root)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert "Success" in status, status
    log = sh("dvc", "queue", "logs", "csd-k4", cwd=root)
    # the experiment's workspace writes its own environment (never committed): the same, so nothing is verified
    assert ran_stages(log) == {"train@csd", "evaluate@csd", "export@csd", "report", "environment", *ALWAYS}
    assert "Stage 'extract@r18' didn't change, skipping" in log
    shown = json.loads(sh("dvc", "exp", "show", "--json", cwd=root))
    runs = [r for rev in shown for e in (rev.get("experiments") or []) for r in (e.get("revs") or [])]
    (run,) = [r for r in runs if r.get("name") == "csd-k4"]
    assert run["data"]["params"]["params.yaml"]["data"]["train"]["csd"]["k"] == 4
    assert 0 < run["data"]["metrics"]["metrics/eval/csd.json"]["data"]["asymmetric"]["mAP"] <= 1
    assert yaml.safe_load((root / "params.yaml").read_text())["train"]["csd"]["k"] == 8  # the workspace keeps its own


def kill_inside(root: Path, stage: str, marker: str, output: str, after: float = 0.0, tries: int = 5) -> None:
    """`dvc repro -f -s stage` killed with SIGKILL (dvc and the stage's process group) once `marker` exists,
    tried again until the kill lands before the stage wrote `output` (DVC removes it before running)."""
    import signal
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    for _ in range(tries):
        proc = subprocess.Popen(["dvc", "repro", "-f", "-s", stage], cwd=root, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while not (root / marker).exists() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(after)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if not (root / output).exists():
            return
    pytest.fail(f"{stage} finished {tries} times before it could be killed")


@pytest.mark.slow
@pytest.mark.parametrize("stage, marker, output, after", [
    ("teacher@mnv3", "data/.partial/teacher-mnv3", "data/teachers/mnv3.pt", 0.0),  # while the teacher trains
    ("mine@r18", "data/.partial/mine-r18", "data/neighbours/r18.h5", 0.0),  # inside mining, its scratch started
])
def test_dvc_repro_killed_inside_a_stage_gives_the_uninterrupted_outputs(repo, stage, marker, output, after):
    root, _ = repo
    before = lock_hashes(root)
    kill_inside(root, stage, marker, output, after)
    assert (root / marker).is_dir()  # the stage's partial work, which its rerun resumes from
    # DVC would restore the killed stage's earlier outputs from its cache: run the stage itself again
    assert ran_stages(sh("dvc", "repro", "-f", "-s", stage, cwd=root)) == {stage}
    assert lock_hashes(root) == before and not (root / marker).exists()
    assert ran_stages(sh("dvc", "repro", cwd=root)) == ALWAYS and lock_hashes(root) == before
    assert changed(sh("dvc", "status", "--json", cwd=root)) == set()


@pytest.mark.slow
def test_forced_rerun_is_bit_identical_on_cpu(repo):
    # every stage run again on its committed inputs, every output compared byte for byte (the training
    # logs, the report and the trade-off plot carry timings: excluded). Runs last.
    root, first = repo
    before = lock_hashes(root)
    out = sh("dvc", "repro", "-f", cwd=root)
    assert ran_stages(out) == ran_stages(first)
    assert lock_hashes(root) == before
    assert {"data/teachers/r18.pt", "data/features/r18.h5", "data/neighbours/r18.h5", "data/students/csd",
            "exports/csd.onnx", "exports/csd.pt", "metrics/eval_ensemble/EM.json"} <= set(before)
