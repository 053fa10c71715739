"""Every training method and what it is: the one table the params schema, the objectives' registry
and the stages read (no torch here, so that validating params.yaml stays light)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    """What the pipeline needs to know of a method besides its loss."""

    several_teachers: bool = False  # distils several teachers at once (declared under `ensembles:`)
    teacher_space: bool = False  # the student learns its teacher's whitened space: asymmetric retrieval applies
    pairs: bool = False  # trains on batches of positive pairs (x_i, y_i), x and y alternating


METHODS = {
    "csd": Method(teacher_space=True),
    "no_distill": Method(),
    "d3still": Method(teacher_space=True),
    "fitnet": Method(teacher_space=True),
    "pair": Method(teacher_space=True),
    "second_order": Method(teacher_space=True),
    "rkd": Method(),
    "pkt": Method(),
    "mixup_ap": Method(),
    "whiten_mtd": Method(several_teachers=True, pairs=True),
    "ed": Method(several_teachers=True, teacher_space=True),
    "contrastive": Method(several_teachers=True, pairs=True),
}
SINGLE_TEACHER = tuple(name for name, m in METHODS.items() if not m.several_teachers)
SEVERAL_TEACHERS = tuple(name for name, m in METHODS.items() if m.several_teachers)
