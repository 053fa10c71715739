"""Cached targets on the GPU when they fit, in host memory otherwise."""
import logging

import torch
from torch import nn

from pipeline.train.objectives import CachedTargets, build_objective, gather_rows
from pipeline.params import TrainParams
from pipeline.train.placement import cached_buffer_names, place_objective

META = torch.device("meta")  # stands for a GPU: parameters move there, nothing can be computed


def csd_objective(n=50, dim=8, k=4):
    table = torch.nn.functional.normalize(torch.randn(1, n, dim), dim=-1)
    neighbours = torch.stack([torch.roll(torch.arange(n), -s) for s in range(1, k + 1)], dim=1)
    settings = TrainParams().csd.model_copy(update={"k": k})
    return build_objective("csd", settings, CachedTargets(table, neighbours, 0, dim), 0.05), table


def test_targets_that_fit_move_with_the_objective():
    objective, table = csd_objective()
    assert place_objective(objective, META, budget_bytes=table.numel() * 4 + 50 * 4 * 8)
    assert {objective.get_buffer(n).device for n in cached_buffer_names(objective)} == {META}


def test_targets_over_the_budget_stay_in_host_memory_uncopied(caplog):
    objective, table = csd_objective()
    objective.extra = nn.Linear(2, 2)  # an ordinary parameter still moves
    with caplog.at_level(logging.INFO):
        assert not place_objective(objective, META, budget_bytes=table.numel() * 4 - 1)
    assert objective.extra.weight.device == META
    assert objective.get_buffer("teacher").data_ptr() == table[0].data_ptr()  # the very (memory-mapped) pages
    assert objective.get_buffer("teacher").device.type == "cpu"
    assert "stay in host memory" in caplog.text


def test_rows_gathered_in_host_memory_arrive_on_the_index_device():
    table = torch.arange(12.0).reshape(6, 2)
    index = torch.tensor([[5, 0], [2, 2]])
    picked = gather_rows(table, index)
    assert torch.equal(picked, table[index]) and picked.device == index.device
    assert torch.equal(gather_rows(table.unsqueeze(0), index, dim=1), table[index].unsqueeze(0))
