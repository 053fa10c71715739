import subprocess
import sys
from pathlib import Path

import yaml

RDISTILL = str(Path(sys.executable).parent / "rdistill")


def run(args, cwd):
    return subprocess.run([RDISTILL, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_lists_every_stage(tmp_path):
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    for stage in ("prepare", "teacher", "extract", "whiten", "mine", "train", "evaluate", "report"):
        assert stage in result.stdout


def test_usage_errors_are_one_short_message_without_traceback(tmp_path):
    for args, message in ((["bogus"], "No such command 'bogus'"), (["extract"], "missing argument 'name'"),
                          (["verify", "t", "--sample", "0"], "--sample")):
        result = run(args, tmp_path)
        assert result.returncode == 2, args
        assert message.lower() in result.stderr.lower() and "Traceback" not in result.stderr, result.stderr


def test_bad_parameter_gives_one_line_error_and_nonzero_exit(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18"}},
                                                          "whiten": {"n_components": -3}}))
    result = run(["prepare"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: params.yaml: whiten.n_components: "
                                     "Input should be greater than 0 (got -3)")


def test_missing_input_names_the_file_and_debug_shows_traceback(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18"}}}))
    result = run(["whiten", "t"], tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: data/prepared/list.csv: image list not found"
    debug = run(["--debug", "whiten", "t"], tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_unknown_teacher_is_refused(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18"}}}))
    result = run(["extract", "nope"], tmp_path)
    assert result.returncode == 1
    assert "teachers.nope: not declared (declared: t)" in result.stderr


def test_params_prints_every_parameter_with_its_default_and_refuses_a_bad_file(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18"}},
                                                          "mine": {"k": 100}}))
    result = run(["params"], tmp_path)
    assert result.returncode == 0, result.stderr
    listed = yaml.safe_load(result.stdout)
    assert listed["mine"] == {"index": "auto", "k": 100, "shortlist": 256, "nprobe": "auto", "refine": 8,
                              "batch_size": 1024}
    assert "  k: 100  # neighbours mined per training image (itself excluded)" in result.stdout.splitlines()
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"teachers": {"t": {"arch": "resnet18"}}, "mine": {"k": 0}}))
    bad = run(["--params", "other.yaml", "params"], tmp_path)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: other.yaml: mine.k: Input should be greater than 0 (got 0)"
