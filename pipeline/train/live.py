"""Training you can watch: every epoch logged with DVCLive as it ends (loss, learning rate, seconds), in a
folder the stage declares in dvc.yaml. DVCLive neither edits dvc.yaml nor makes experiments of its own
here; a resumed run replays the restored epochs first, so the step series is the uninterrupted one."""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)

LOGGED = ("loss", "lr", "seconds", "val_map")


def epoch_line(record: dict) -> str:
    """An epoch record in words for the stage's log: "epoch 3 loss 0.4321 (1.2s)[ validation mAP 0.8765]"."""
    validation = f" validation mAP {record['val_map']:.4f}" if "val_map" in record else ""
    return f"epoch {record['epoch']} loss {record['loss']:.4f} ({record['seconds']:.1f}s){validation}"


@contextlib.contextmanager
def epoch_logger(folder: Path) -> Iterator[Callable[[dict], None]]:
    """A callback for fit's on_epoch that logs each epoch record as DVCLive step epoch − 1 under `folder`
    (plots/metrics/<name>.tsv per metric, metrics.json the latest). Under torchrun only rank 0 logs: another
    rank gets a callback that does nothing and never opens the folder (DVCLive would write an empty summary)."""
    from pipeline.distributed import is_main
    if not is_main():
        yield lambda record: None
        return
    try:
        from dvclive import Live
        from scmrepo.exceptions import SCMError
    except ImportError:  # e.g. a bare GPU machine: training runs the same, with its log lines only
        log.warning("dvclive is not installed: epochs are logged as lines only, not under %s", folder)
        yield lambda record: None
        return

    try:
        live = Live(dir=str(folder), save_dvc_exp=False, dvcyaml=False, report=None)
    except SCMError as exc:  # DVCLive reads the git repository it runs in, and fails in one without commits
        log.warning("DVCLive cannot log in this git repository (%s): commit once to follow training live", exc)
        folder.mkdir(parents=True, exist_ok=True)
        yield lambda record: None
        return
    with live:
        def log_epoch(record: dict) -> None:
            live.step = record["epoch"] - 1
            for name in LOGGED:
                if name in record:
                    live.log_metric(name, record[name])
            live.next_step()
        yield log_epoch
