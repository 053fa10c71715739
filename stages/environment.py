"""Stage `environment`: data/environment.json, what this machine computes features with (no torch import).

The file is neither cached by DVC nor committed to git: a fresh clone or another machine writes its own,
and when it differs from the one dvc.lock records, `dvc repro` reruns the verify stages that depend on it.
"""
from __future__ import annotations

from pipeline import layout
from pipeline.io import write_json
from pipeline.machine import machine_environment


def environment() -> str:
    """Write data/environment.json; return a one-line summary."""
    found = machine_environment()
    write_json(layout.ENVIRONMENT, found)
    return (f"environment: torch {found['torch']}, {found['decoder']}, {found['cpu']['model']} "
            f"({' '.join(found['cpu']['vector_flags']) or 'no vector flags'}), GPUs: {', '.join(found['gpus']) or 'none'}")
