import pytest
from torch import nn

from pipeline.report.cost import model_cost
from pipeline.report.table import results_table
from pipeline.report.tradeoff import tradeoff_points


class Linear1x1(nn.Module):
    """A 1×1 convolution and a mean: FLOPs by hand."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)

    def forward(self, x):
        return self.conv(x).mean(dim=(-2, -1))


def test_cost_counts_parameters_and_the_flops_of_every_scale_by_hand():
    cost = model_cost(Linear1x1(), image_size=8, scales=[1.0, 0.5], batch=2, repeats=1)
    assert cost["params_m"] == pytest.approx(12 / 1e6)
    # conv: 2 FLOPs per multiply-add, 3 inputs x 4 outputs per pixel: 64 px at scale 1, 16 at 0.5
    assert cost["gflops"] == pytest.approx(2 * 3 * 4 * (64 + 16) / 1e9)
    assert cost["ms_per_image"] > 0


def scores(m):
    return {"mAP": m, "R@1": 0.5, "R@5": 0.75, "R@10": 1.0}


def test_tradeoff_points_and_cost_columns():
    teachers = {"t": {"raw": {**scores(0.9), "dim": 64}, "whitened": {**scores(0.8), "dim": 8}}}
    students = {"csd": {"method": "csd", "arch": "resnet18", "teacher": "t", "symmetric": scores(0.7),
                        "asymmetric": scores(0.6)}}
    ensembles = {"EM": {"teachers": ["t", "u"], "symmetric": scores(0.85), "diagnostics": {}}}
    costs = {"t": {"params_m": 25.0, "gflops": 4.0, "ms_per_image": 20.0},
             "u": {"params_m": 5.0, "gflops": 1.0, "ms_per_image": 5.0},
             "csd": {"params_m": 11.0, "gflops": 0.5, "ms_per_image": 2.0}}
    points = tradeoff_points(teachers, students, ensembles, costs)
    assert points == [("teacher t", "teacher", 4.0, 0.8), ("EM (t + u)", "ensemble", 5.0, 0.85),
                      ("csd", "symmetric", 0.5, 0.7), ("csd", "asymmetric", 0.5, 0.6)]
    lines = results_table(teachers, students, {}, ensembles, costs).splitlines()
    assert lines[0] == "| model | setting | mAP | R@1 | R@5 | R@10 | params (M) | GFLOPs | ms/image | notes |"
    assert lines[2].endswith("| 25.0 | 4.000 | 20.0 |  |")
    assert "| 30.0 | 5.000 | 25.0 |" in lines[4]  # EM: both teachers
    assert "| 11.0 | 0.500 | 2.0 |" in lines[5]
