"""The comparison of two demo runs that the README reports."""
from benchmarks.reproduced import compare


def test_means_are_checked_against_the_first_runs_intervals_and_marked_signs_against_each_other():
    first = {"a": {"symmetric": {"mAP": 0.8, "low": 0.78, "high": 0.82,
                                 "vs_no_distill": {"diff": 0.05, "excludes_zero": True}}},
             "b": {"symmetric": {"mAP": 0.7, "low": 0.69, "high": 0.71,
                                 "vs_no_distill": {"diff": 0.01, "excludes_zero": False}}}}
    second = {"a": {"symmetric": {"mAP": 0.83, "low": 0.8, "high": 0.86,
                                  "vs_no_distill": {"diff": -0.02, "excludes_zero": False}}},
              "b": {"symmetric": {"mAP": 0.705, "low": 0.7, "high": 0.71,
                                  "vs_no_distill": {"diff": 0.02, "excludes_zero": False}}}}
    got = compare(first, second)
    assert (got["rows"], got["second_mean_inside_first_interval"]) == (2, 1)  # a's 0.83 lies above 0.82
    assert (got["marked_differences"], got["marked_sign_changes"]) == (1, 1)  # only a's was marked, and it flipped
