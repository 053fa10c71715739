"""The trade-off figure: one label per cost shared by students, and the students' intervals beside it."""
from PIL import Image

from pipeline.report.tradeoff import point_labels, tradeoff_plot

POINTS = [("teacher r50", "teacher", 0.363, 0.85), ("EM (r50 + mnv3)", "ensemble", 0.39, 0.87),
          ("csd", "symmetric", 0.031, 0.87), ("csd", "asymmetric", 0.031, 0.88), ("pkt", "symmetric", 0.031, 0.73),
          ("tiny", "symmetric", 0.01, 0.5)]


def test_students_sharing_a_cost_get_one_label_and_teachers_their_own():
    labels = point_labels(POINTS)
    assert ("2 students (right)", 0.031, 0.88) in labels  # at the best of them
    assert ("tiny", 0.01, 0.5) in labels and ("teacher r50", 0.363, 0.85) in labels
    xs = [x for _, x, _ in labels if x < 0.1]
    assert len(xs) == len(set(xs))  # never two labels at one student cost


def test_the_figure_has_a_panel_of_students_with_their_intervals(tmp_path):
    tradeoff_plot(POINTS, tmp_path / "one.png")
    intervals = {"csd": {"symmetric": {"mAP": 0.87, "low": 0.85, "high": 0.89},
                         "asymmetric": {"mAP": 0.88, "low": float("nan"), "high": float("nan")}},
                 "pkt": {"symmetric": {"mAP": 0.73, "low": 0.7, "high": 0.76}}}
    tradeoff_plot(POINTS, tmp_path / "two.png", intervals)
    assert Image.open(tmp_path / "two.png").size[0] > Image.open(tmp_path / "one.png").size[0]
