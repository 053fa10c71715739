"""dvc.yaml follows the code: every project module a stage can import is among its deps, and every
params section it reads is among its params, so `dvc repro` reruns each stage whose code changed."""
import ast
import json
import re
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[1]
# Modules that cannot change an output: the error type and the command-line dispatcher.
MAY_STAY_OUT = {"pipeline/errors.py", "stages/cli.py"}

# Params that change no output (workers, memory budgets, how long ranks wait): declared, a teammate's
# setting for a GPU machine would recompute every feature.
RESULT_FREE_PARAMS = {("runtime",)}


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name (a package's __init__.py), or None outside the project."""
    path = PROJECT / Path(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imported_names(path: Path) -> set[str]:
    """Every module a file imports, at any depth of its code (imports inside functions included)."""
    package = ".".join(path.relative_to(PROJECT).with_suffix("").parts[:-1])
    names = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` imports never run
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return names


def import_tree(entry: Path) -> set[str]:
    """Project files reachable from `entry` by imports (parent packages' __init__ files included)."""
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        rel = path.relative_to(PROJECT).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        for name in imported_names(path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
                found = module_file(".".join(parts[:i]))
                if found is not None:
                    todo.append(found)
    return seen


def stage_entries() -> dict[str, Path]:
    """CLI command -> the stage module its function imports (from stages/cli.py)."""
    tree = ast.parse((PROJECT / "stages/cli.py").read_text())
    entries = {}
    for fn in tree.body:
        if not isinstance(fn, ast.FunctionDef):
            continue
        command = next((d.args[0].value for d in fn.decorator_list
                        if isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command"), None)
        module = next((n.module for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)), None)
        if command and module:
            entries[command] = module_file(module)
    return entries


def dvc_stages() -> dict[str, dict]:
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    return {name: spec.get("do", spec) for name, spec in stages.items()}


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def schema_prefix(segments: list[str]) -> tuple[str, ...]:
    """The longest prefix of an attribute chain on Params that names schema fields (a method call or a
    table entry ends it)."""
    from pydantic import BaseModel

    from pipeline.params import Params
    model, path = Params, []
    for name in segments:
        if model is None or name not in model.model_fields:
            break
        path.append(name)
        annotation = model.model_fields[name].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return tuple(path)


def chain(node: ast.AST) -> tuple[ast.AST, list[str]]:
    """`a.b.c` as (the node of `a`, ["b", "c"])."""
    names = []
    while isinstance(node, ast.Attribute):
        names.insert(0, node.attr)
        node = node.value
    return node, names


def params_paths_read(path: Path) -> set[tuple[str, ...]]:
    """Dotted params paths one stage file reads: `params.train.student.arch`, and through aliases such as
    `p = params.train` or `spec, p = ..., load_params(f).mine` followed by `p.student.arch`."""
    tree = ast.parse(path.read_text())
    aliases: dict[str, tuple[str, ...]] = {"params": ()}

    def resolve(node: ast.AST) -> tuple[str, ...] | None:
        base, names = chain(node)
        if isinstance(base, ast.Name) and base.id in aliases:
            return aliases[base.id] + tuple(names)
        if isinstance(base, ast.Call) and getattr(base.func, "id", "") == "load_params":
            return tuple(names)
        return None

    alias_values = set()
    for node in ast.walk(tree):  # aliases first (a stage assigns them before use)
        if isinstance(node, ast.Assign):
            pairs = [(node.targets[0], node.value)]
            if isinstance(node.targets[0], ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(node.targets[0].elts, node.value.elts))
            for target, value in pairs:
                if isinstance(target, ast.Name) and target.id != "params" and isinstance(value, ast.Attribute):
                    resolved = resolve(value)
                    if resolved is not None:
                        aliases[target.id] = schema_prefix(list(resolved))
                        alias_values.add(id(value))
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | alias_values
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:  # whole chains only
            resolved = resolve(node)
            if resolved is not None and schema_prefix(list(resolved)):
                read.add(schema_prefix(list(resolved)))
    return read


def params_read(files: set[str]) -> set[tuple[str, ...]]:
    """Dotted params paths a stage's own code reads (its shared helpers resolve what the stage declares by name)."""
    return {found for rel in files if rel.startswith("stages/") and rel not in ("stages/common.py", "stages/students.py")
            for found in params_paths_read(PROJECT / rel)}


def declares(declared: list[str], read: tuple[str, ...]) -> bool:
    """Whether a declared param (dotted, `${...}` standing for any entry) covers a path read: the read path
    lies under it, or names the table whose entries it declares."""
    for entry in declared:
        parts = str(entry).split(".")
        matches = all(d.startswith("${") or d == r for d, r in zip(parts, read))
        if matches and (len(parts) <= len(read) or all(d.startswith("${") for d in parts[len(read):])):
            return True
    return False


STAGES = dvc_stages()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_imports_is_a_dependency(stage):
    spec = STAGES[stage]
    command = spec["cmd"].split()[1]
    files = import_tree(stage_entries()[command])
    missing = sorted(f for f in files - MAY_STAY_OUT
                     if not f.endswith("__init__.py") and not covered(f, spec.get("deps", [])))
    assert not missing, f"dvc.yaml stage {stage} runs these modules but does not depend on them: {missing}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_param_a_stage_reads_is_declared(stage):
    spec = STAGES[stage]
    command = spec["cmd"].split()[1]
    missing = sorted(".".join(path) for path in params_read(import_tree(stage_entries()[command]))
                     if not declares(spec.get("params", []), path) and tuple(path[:1]) not in RESULT_FREE_PARAMS)
    assert not missing, f"dvc.yaml stage {stage} reads params it does not declare: {missing}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_no_stage_declares_a_setting_that_changes_no_output(stage):
    declared = [str(entry) for entry in STAGES[stage].get("params", [])]
    covering = sorted({entry for entry in declared for path in RESULT_FREE_PARAMS
                       if tuple(entry.split(".")) == path[:len(entry.split("."))]})
    assert not covering, (f"dvc.yaml stage {stage} declares {covering}, which hold(s) settings that change no "
                          f"output ({sorted('.'.join(p) for p in RESULT_FREE_PARAMS)}): changing them would rerun it")


def test_params_paths_follow_aliases_to_the_key_read(tmp_path):
    code = tmp_path / "stage.py"
    code.write_text("def run(params_path):\n"
                    "    params = load_params(params_path)\n"
                    "    spec, p = student(params), params.train\n"
                    "    net = create(p.student.arch, p.temperature, params.seed, load_params(params_path).mine.k)\n"
                    "    recipe = p.recipe.model_dump()\n")
    assert params_paths_read(code) == {("train", "student", "arch"), ("train", "temperature"), ("seed",),
                                       ("mine", "k"), ("train", "recipe")}
    declared = ["seed", "train.student", "train.${item.method}", "mine", "teachers.${key}"]
    assert declares(declared, ("train", "student", "arch")) and declares(declared, ("mine", "k"))
    assert declares(declared, ("teachers",))  # a table read by name: its entries are declared
    assert not declares(["train.student"], ("train", "temperature"))  # a first key alone does not cover train.X


def test_the_import_walk_finds_lazy_and_relative_imports():
    tree = import_tree(PROJECT / "stages/prepare.py")
    assert "pipeline/data/importers/revisited.py" in tree  # imported inside a function, by name
    assert "pipeline/errors.py" in tree
    assert stage_entries()["train"] == PROJECT / "stages/train.py"


def project_modules() -> list[str]:
    return sorted(p.relative_to(PROJECT).as_posix() for folder in ("pipeline", "stages")
                  for p in (PROJECT / folder).rglob("*.py") if p.name != "__init__.py")


def test_an_edited_module_reruns_exactly_the_stages_that_import_it():
    """For every module: the stages whose deps cover it are the stages whose import tree holds it."""
    trees = {stage: import_tree(stage_entries()[spec["cmd"].split()[1]]) for stage, spec in STAGES.items()}
    wrong = {}
    for module in project_modules():
        if module in MAY_STAY_OUT:
            continue
        rerun = {stage for stage, spec in STAGES.items() if covered(module, spec.get("deps", []))}
        running = {stage for stage, tree in trees.items() if module in tree}
        if rerun != running:
            wrong[module] = {"needlessly rerun": sorted(rerun - running), "stale": sorted(running - rerun)}
    assert not wrong, f"dvc.yaml deps do not follow the imports: {wrong}"


@pytest.mark.slow
def test_dvc_status_marks_exactly_the_stages_whose_imports_hold_an_edited_module(tmp_path):
    """The same promise asked of DVC itself: in a copy of the project whose every output exists and is
    committed, editing one library module makes `dvc status` list exactly the stages that import it."""
    import os
    import shutil
    import subprocess
    import sys

    from dvc.repo import Repo

    for entry in ("pipeline", "stages"):
        shutil.copytree(PROJECT / entry, tmp_path / entry, ignore=shutil.ignore_patterns("__pycache__"))
    for entry in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(PROJECT / entry, tmp_path / entry)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}

    def run(*cmd):
        result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{cmd}: {result.stderr[-2000:]}"
        return result.stdout

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    with Repo(tmp_path) as repo:  # every declared output and data dependency, as a placeholder file or folder
        for stage in repo.index.stages:
            for item in [*stage.outs, *stage.deps]:
                path = Path(item.fs_path)
                if path.exists():  # the code, and outputs already made
                    continue
                if path.suffix:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("{}\n")
                else:
                    path.mkdir(parents=True, exist_ok=True)
    always = {name for name, spec in STAGES.items() if spec.get("always_changed")}

    def changed() -> set[str]:
        status = json.loads(run("dvc", "status", "--json"))
        return {name.split("@")[0] for name in status if name.split("@")[0] not in always}

    trees = {stage: import_tree(stage_entries()[spec["cmd"].split()[1]]) for stage, spec in STAGES.items()}
    run("dvc", "commit", "-f", "-q")
    module = "pipeline/data/views.py"  # imported by extraction, verification and training, not by the rest
    with open(tmp_path / module, "a") as f:
        f.write("\n# edited\n")
    expected = {stage for stage, tree in trees.items() if module in tree} - always
    assert len(expected) > 1 and changed() == expected
