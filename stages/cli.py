"""The `rdistill` command: one sub-command per DVC stage."""
from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

import typer

from pipeline.determinism import deterministic_cuda_environment
from pipeline.errors import RdistillError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil image-retrieval teachers into small students from cached teacher features. "
                       "Each pipeline command is one stage of dvc.yaml (run them all with `dvc repro`); `init` "
                       "starts a project on your own images, `params` lists every parameter.")
state = {"params": Path("params.yaml"), "debug": False}


@app.callback()
def main_options(
    params: Path = typer.Option(Path("params.yaml"), "--params", help="Parameter file to read."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for expected errors."),
) -> None:
    """Options shared by every stage."""
    state["params"], state["debug"] = params, debug
    deterministic_cuda_environment()  # before any stage's first CUDA call
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)  # its CPU-feature probing is noise to users
    for exporter in ("onnx_ir", "onnxscript", "torch.onnx"):  # the ONNX exporter's passes, one line each
        logging.getLogger(exporter).setLevel(logging.WARNING)


# Stage modules are imported inside each command: they pull in torch and faiss (seconds), which
# `rdistill --help` and a wrong parameter should not wait for.


@app.command("prepare")
def prepare_cmd() -> None:
    """Write data/prepared/list.csv (path,label,split): the embedded digits or your own list."""
    from stages.prepare import prepare
    prepare(state["params"])


@app.command("init")
def init_cmd(
    images: Path = typer.Option(None, "--images", help="A folder with one sub-folder of images per class."),
    list_file: Path = typer.Option(None, "--list", help="A CSV path,label,split[,camera][,bbox] of your images."),
    root: Path = typer.Option(None, "--root", help="With --list: the folder its paths are relative to (default: the CSV's)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing parameter file."),
) -> None:
    """Start a project on your own images: a complete params.yaml (--params), real-photo defaults sized to them."""
    from stages.init import init
    typer.echo(init(state["params"], images, list_file, root, force))


@app.command("inputs")
def inputs_cmd() -> None:
    """Fingerprint the images, lists and checkpoints outside the repository (data/inputs/), so changes rerun."""
    from stages.inputs import inputs
    typer.echo(inputs(state["params"]))


@app.command("teacher")
def teacher_cmd(name: str = typer.Argument(..., help="Teacher name declared under `teachers:`.")) -> None:
    """Resolve a teacher's weights (file, local torch cache) or train it (weights: train)."""
    from stages.teacher import teacher
    teacher(name, state["params"])


@app.command("extract")
def extract_cmd(name: str = typer.Argument(..., help="Teacher name declared under `teachers:`.")) -> None:
    """Multi-scale GeM features of every listed image (or a teacher's imported features) -> data/features/NAME.h5."""
    from stages.extract import extract
    extract(name, state["params"])


@app.command("environment")
def environment_cmd() -> None:
    """Write data/environment.json: libraries, decoder, CPU kernels and GPUs that cached features depend on."""
    from stages.environment import environment
    typer.echo(environment())


@app.command("verify")
def verify_cmd(
    name: str = typer.Argument(..., help="Teacher name declared under `teachers:`."),
    sample: int = typer.Option(None, "--sample", min=1, help="Items to recompute (default: verify.sample)."),
) -> None:
    """Recompute a seeded sample of cached features with the teacher here; fail below verify.min_cosine."""
    from stages.verify import verify
    text, failure = verify(name, state["params"], sample)
    typer.echo(text)
    if failure:
        raise RdistillError(failure)


@app.command("whiten")
def whiten_cmd(name: str = typer.Argument(..., help="Teacher name.")) -> None:
    """Learn PCA whitening on the training split and whiten every feature."""
    from stages.whiten import whiten
    whiten(name, state["params"])


@app.command("mine")
def mine_cmd(name: str = typer.Argument(..., help="Teacher name.")) -> None:
    """FAISS index over whitened training features; top-K neighbours of each training image, refined by
    their neighbours' lists (mine.refine)."""
    from stages.mine import mine
    mine(name, state["params"])


@app.command("train")
def train_cmd(name: str = typer.Argument(..., help="Student name declared under `students:` or `ensembles:`.")) -> None:
    """Train a student against cached teacher features and neighbours."""
    from stages.train import train
    train(name, state["params"])


@app.command("evaluate")
def evaluate_cmd(name: str = typer.Argument(..., help="Student name.")) -> None:
    """Score a student: symmetric, and asymmetric against its teacher's gallery (teacher-space methods)."""
    from stages.evaluate import evaluate
    _echo_if(evaluate(name, state["params"]))


@app.command("export")
def export_cmd(name: str = typer.Argument(..., help="Student name.")) -> None:
    """Write exports/NAME.onnx and exports/NAME.pt (TorchScript) with the student's preprocessing in their metadata."""
    from stages.export import export
    typer.echo(export(name, state["params"]))


@app.command("search")
def search_cmd(
    name: str = typer.Argument(..., help="Student name."),
    gallery: Path = typer.Option(..., "--gallery", help="Folder of images to search (recursively)."),
    query: Path = typer.Option(..., "--query", help="Query image."),
    top: int = typer.Option(10, "--top", min=1, help="Hits to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the hits as JSON."),
    grid: Path = typer.Option(None, "--grid", help="Where to write the grid PNG (default data/search/NAME/QUERY.png)."),
) -> None:
    """Top hits for a query image among a folder's images, with the student (gallery described once, then cached)."""
    from stages.search import search
    typer.echo(search(name, state["params"], gallery, query, top, as_json, grid))


@app.command("evaluate-teacher")
def evaluate_teacher_cmd(name: str = typer.Argument(..., help="Teacher name.")) -> None:
    """Score a teacher's raw and whitened features."""
    from stages.evaluate_teachers import evaluate_teacher
    _echo_if(evaluate_teacher(name, state["params"]))


@app.command("evaluate-em")
def evaluate_em_cmd() -> None:
    """Score Ensemble Mean (EM): every teacher's whitened similarities averaged at test time."""
    from stages.evaluate_teachers import evaluate_ensemble
    _echo_if(evaluate_ensemble(state["params"]))


@app.command("report")
def report_cmd() -> None:
    """Gather metrics into reports/results.md and print the table."""
    from stages.report import report
    typer.echo(report(state["params"]))


@app.command("params")
def params_cmd() -> None:
    """Print every parameter in effect (params.yaml over the defaults), each with its description."""
    from pipeline.params import load_params
    from pipeline.params_listing import annotated_yaml
    typer.echo(annotated_yaml(load_params(state["params"])), nl=False)


def _echo_if(text: str) -> None:
    if text:
        typer.echo(text)


def main() -> None:
    """Entry point: run the app; expected errors become one line on stderr and exit code 1.

    Typer reports usage errors itself (exit code 2); every other exception reaches the handlers here.
    """
    try:
        app()
    except RdistillError as exc:
        if state["debug"]:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        if state["debug"] or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        typer.echo(f"error: {exc.filename or 'output'}: no space left on device; earlier outputs are intact, "
                   f"free space and rerun", err=True)
        sys.exit(1)


if __name__ == "__main__":  # `torchrun --nproc-per-node N -m stages.cli train S`
    main()
