from pipeline.report.verify import environment_changes, environment_line, verify_summary, verify_table

CACHED = {"torch": "2.13.0", "torchvision": "0.28.0", "decoder": "Pillow 12.0.0, libjpeg 8.0", "device": "NVIDIA A100 (CUDA 12.4)",
          "numpy": "2.4.6"}
LIVE = {**CACHED, "torch": "2.14.1", "device": "cpu (x86_64)"}
CHECK = {"teacher": "r50", "items": 64, "views": 32, "min_cosine": 0.99812, "mean_cosine": 0.99951, "max_abs_diff": 0.0123,
         "min_cosine_allowed": 0.999, "passed": False,
         "worst": [{"item": "a.jpg (row 3, view 1)", "cosine": 0.99812, "max_abs_diff": 0.0123}],
         "provenance_differs": {"seed": {"cached": 0, "here": 1}}, "cached_environment": CACHED, "live_environment": LIVE}


def test_environment_line_and_changes():
    assert environment_line(CACHED) == "torch 2.13.0, torchvision 0.28.0, Pillow 12.0.0, libjpeg 8.0, NVIDIA A100 (CUDA 12.4)"
    assert environment_line(None) == "not recorded"
    assert environment_changes(CACHED, LIVE) == {"torch": ["2.13.0", "2.14.1"], "device": ["NVIDIA A100 (CUDA 12.4)", "cpu (x86_64)"]}
    assert environment_changes(None, {"torch": "2.14.1"}) == {"torch": [None, "2.14.1"]}


def test_summary_and_table_show_the_verdict_the_worst_item_and_both_environments():
    summary = verify_summary(CHECK).splitlines()
    assert summary[0] == ("verify r50: 64 cached items (32 augmented views) recomputed: cosine min 0.998120, mean 0.999510; "
                          "max |diff| 1.23e-02; the cache DOES NOT HOLD (verify.min_cosine 0.999)")
    assert summary[1] == "  lowest: a.jpg (row 3, view 1): cosine 0.998120"
    assert summary[2].endswith("NVIDIA A100 (CUDA 12.4)") and summary[3].endswith("cpu (x86_64)")
    assert summary[4] == "  provenance differs: seed 0 in the cache, 1 here"
    table = verify_table({"r50": CHECK}).splitlines()
    assert table[2] == ("| r50 | 64 | 0.998120 | 0.999510 | 1.2e-02 | torch 2.13.0, torchvision 0.28.0, Pillow 12.0.0, libjpeg 8.0, "
                        "NVIDIA A100 (CUDA 12.4) | torch 2.14.1, torchvision 0.28.0, Pillow 12.0.0, libjpeg 8.0, cpu (x86_64) |")
