"""Training from cached teacher features vs the student's own step, and vs running the teacher online.

D3still setting: ResNet-50 teacher at 256 px, ResNet-18 student at 64 px (METHODS §5). Measured in
one run: the student's forward+backward+step on batches in memory (t_s), the teacher's forward (t_t),
an epoch of the real training loop from the cache (features looked up by row; decoded views kept in memory
after the first epoch, as runtime.image_cache_mb does, and for comparison decoded every epoch; decoding in the
main process or one DataLoader worker) and the online step (teacher forward + student step). Speedup limit =
(t_t + t_s) / t_s; quantities that are compared are timed side by side (see below).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import typer

from benchmarks.common import timed, write_result
from benchmarks.images import write_images


def main(images: int = 256, batch: int = 32, teacher_size: int = 256, student_size: int = 64,
         workers: list[int] = typer.Option([0, 1], help="DataLoader workers to time the cached epoch with (each)."),
         cache_mb: float = typer.Option(2048, help="runtime.image_cache_mb of the cached runs."),
         device: str = typer.Option("auto", help="cpu | cuda | auto (CUDA when torch sees it)."),
         name: str = typer.Option("training", help="results file: benchmarks/results/<name>.json")) -> dict:
    """Write benchmarks/results/<name>.json; the verdicts use the fastest worker count (train.workers).

    On CUDA the networks, batches and cached features live on the GPU and the loop runs with AMP and
    channels-last, as training does there.
    """
    from pipeline.data.cache import DecodedCache
    from pipeline.data.dataset import make_loader
    from pipeline.data.listfile import read_list
    from pipeline.data.views import OneViewPerImage, SeededView, ViewDataset, every_view
    from pipeline.losses.d3still import d3still
    from pipeline.models.backbones import create
    from pipeline.params import Recipe, TrainParams
    from pipeline.train.loop import fit, make_optimizer
    from pipeline.train.objectives import CachedTargets, build_objective

    torch.manual_seed(0)
    on = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)
    amp = on.type == "cuda"
    layout = torch.channels_last if amp else torch.preserve_format
    teacher = create("resnet50", None).eval().to(on, memory_format=layout)
    student = create("resnet18", 2048).to(on, memory_format=layout)
    params = TrainParams()
    with tempfile.TemporaryDirectory() as tmp:
        image_list = read_list(write_images(Path(tmp), images))
        rows = image_list.train_rows()

        def batches(size: int) -> list[torch.Tensor]:
            view = SeededView(size, 0)
            dataset = ViewDataset(image_list.paths, image_list.labels, *every_view(rows, 1), view)
            return [x.to(on) for x, _, _ in make_loader(dataset, batch, 0)]

        big, small = batches(teacher_size), batches(student_size)
        with torch.no_grad(), torch.autocast(on.type, enabled=amp):  # as extraction runs the teacher
            cached = torch.cat([teacher(x).float() for x in big])  # the cache: teacher features of every row
        targets = CachedTargets(cached[None], None, 0, cached.shape[1])
        objective = build_objective("d3still", params.d3still, targets).to(on)
        optimizer = make_optimizer(student.parameters(), Recipe())

        scaler = torch.amp.GradScaler(on.type, enabled=amp)

        def update(loss: torch.Tensor) -> float:
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            return loss.item()

        def student_step(x, rows_batch) -> float:  # as the training loop's step: AMP network, float32 loss
            with torch.autocast(on.type, enabled=amp):
                q = student(x)
            return update(objective(q.float(), None, rows_batch))

        row_batches = [torch.arange(i, min(i + batch, images), device=on) for i in range(0, images, batch)]

        def d3still_loss(q, g):
            p = params.d3still
            return d3still(q, g, p.k, p.m, p.alpha, p.beta, p.gamma)

        @torch.no_grad()
        def teacher_forward(xb) -> torch.Tensor:
            with torch.autocast(on.type, enabled=amp):
                return teacher(xb).float()

        def online_step(xb, xs) -> float:
            g = teacher_forward(xb)
            with torch.autocast(on.type, enabled=amp):
                q = student(xs)
            return update(d3still_loss(q.float(), g))

        def student_steps() -> float:
            return sum(timed(student_step, x, r) for x, r in zip(small, row_batches)) / len(small)

        student_step(small[0], row_batches[0])  # warm-up
        teacher_forward(big[0])
        # Teacher forward, student step and online step batch by batch, each twice in mirrored order
        # (teacher, student, online, online, student, teacher), so that this machine's speed drift
        # (10 % within a minute) touches all three alike.
        seconds = {"teacher": 0.0, "student": 0.0, "online": 0.0}
        for xb, xs, r in zip(big, small, row_batches):
            calls = {"teacher": (teacher_forward, xb), "student": (student_step, xs, r), "online": (online_step, xb, xs)}
            for call in [*calls, *reversed(calls)]:
                fn, *args = calls[call]
                seconds[call] += timed(fn, *args) / (2 * len(big))
        t_teacher, t_student, t_online = seconds["teacher"], seconds["student"], seconds["online"]

        # equal loss values on the same batch: cached lookup vs the teacher run online
        with torch.no_grad():
            q = student.eval()(small[1])
            loss_cached = objective(q, None, row_batches[1]).item()
            loss_online = d3still_loss(q, teacher_forward(big[1])).item()
        student.train()

        dataset = ViewDataset(image_list.paths, image_list.labels, *every_view(rows, 1), SeededView(student_size, 0))
        # The second epoch of each run: workers started, and with the cache every view already decoded once.
        # Each run is compared with student steps timed just before and after it: this machine's speed
        # drifts by 10-30 % over minutes, which a reference taken once for all runs would mistake for the loader.
        epoch_s, step_s, ratio = ({"decoded": {}, "cached": {}} for _ in range(3))
        for n_workers in workers:
            for kind, budget_mb in (("decoded", 0), ("cached", cache_mb)):
                data = DecodedCache(dataset, (3, student_size, student_size), budget_mb, shared=n_workers > 0)
                loader = make_loader(data, batch, n_workers, seed=0, sampler=lambda g: OneViewPerImage(len(rows), 1, g))
                before = student_steps()
                history = fit(student, objective, loader, Recipe(epochs=2, batch_size=batch), on)
                step_s[kind][n_workers] = [before, student_steps()]
                epoch_s[kind][n_workers] = history[-1]["seconds"] / len(loader)
                ratio[kind][n_workers] = epoch_s[kind][n_workers] / float(np.mean(step_s[kind][n_workers]))
    fastest = {kind: min(runs, key=runs.get) for kind, runs in ratio.items()}
    cached, decoded = ratio["cached"][fastest["cached"]], ratio["decoded"][fastest["decoded"]]
    limit = (t_teacher + t_student) / t_student
    # speedup / limit = t_online / t_cached · t_student / (t_teacher + t_student), evaluated as
    # [t_online / (t_teacher + t_student)] (timed together) / [t_cached / t_step] (timed together)
    share = t_online / (t_teacher + t_student) / cached
    figures = {"student_step_s": t_student, "teacher_forward_s": t_teacher, "online_step_s": t_online,
               "cached_step_s_by_workers": epoch_s["cached"], "decoding_step_s_by_workers": epoch_s["decoded"],
               "student_step_around_each_run_s": step_s, "epoch_vs_student_step_by_workers": ratio,
               "fastest_workers": fastest["cached"], "epoch_vs_student_step": cached,
               "epoch_vs_student_step_decoding_every_epoch": decoded,
               "speedup_vs_online": limit * share, "speedup_limit": limit, "speedup_share_of_limit": share,
               "speedup_share_of_limit_decoding_every_epoch": share * cached / decoded,
               "loss_cached": loss_cached, "loss_online": loss_online}
    write_result(name, {"images": images, "batch": batch, "device": str(on), "amp_channels_last": amp,
                        "teacher": f"resnet50 @ {teacher_size}px",
                              "student": f"resnet18 @ {student_size}px", "loss": "d3still", "workers": workers,
                              "image_cache_mb": cache_mb},
                 figures, {"epoch <= 1.1 x student step": figures["epoch_vs_student_step"] <= 1.1,
                           "speedup >= 0.9 x limit": figures["speedup_share_of_limit"] >= 0.9,
                           "equal loss on the same batch": bool(np.isclose(loss_cached, loss_online,
                                                                           rtol=1e-5 if not amp else 1e-3))})
    return figures


if __name__ == "__main__":
    typer.run(main)
