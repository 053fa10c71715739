"""This machine's paths and runtime settings: where the images, lists, weights and imported features named in
params.yaml lie here, and how many workers it runs.

params.yaml is shared (git, `dvc exp`), but a teammate's images or checkpoints may live elsewhere. The
git-ignored file `machine.yaml` beside params.yaml gives this machine's value of any path parameter
or `runtime` setting, by its dotted key:

    prepare.root: /mnt/photos/landmarks
    teachers.resnet101.weights: /models/resnet101_gem.pth
    runtime.workers: 8

DVC never reads that file, so a local value changes no stage. Ids in the prepared list are relative to
the roots, so every machine computes the same outputs. A relative path that leaves the workspace
(`../images`) is anchored at the workspace, so a queued experiment, which runs in a copy under
`.dvc/tmp/exps/`, finds what the workspace finds; it also reads the workspace's `machine.yaml`.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from pipeline.errors import RdistillError

LOCAL_FILE = "machine.yaml"
EXPERIMENT_COPIES = os.sep + os.path.join(".dvc", "tmp", "exps") + os.sep
SOURCE_PATHS = ("root", "list")
TEACHER_PATHS = ("weights", "features", "ids")
NOT_PATHS = {"train", "pretrained", "none"}  # values of `weights`/`init` that name no file


def workspace_of(folder: Path) -> Path:
    """The workspace a folder belongs to: itself, or for a DVC experiment's copy the workspace it was made from."""
    text = str(folder.absolute())
    cut = text.find(EXPERIMENT_COPIES)
    return Path(text[:cut]) if cut >= 0 else folder.absolute()


RUNTIME = ("workers", "image_cache_mb", "timeout_minutes")


def path_keys(raw: dict) -> list[tuple[str, ...]]:
    """The key paths of params.yaml that name files or folders (whether set or not)."""
    keys = [("prepare", k) for k in SOURCE_PATHS]
    keys += [("prepare", section, k) for section in ("train_from", "gallery_from") for k in SOURCE_PATHS]
    keys += [("teachers", name, k) for name in (raw.get("teachers") or {}) for k in TEACHER_PATHS]
    keys += [("train", "student", "init")] + [("teachers", name, "init") for name in (raw.get("teachers") or {})]
    return keys


def _get(raw: dict, key: tuple[str, ...]):
    node = raw
    for part in key:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _set(raw: dict, key: tuple[str, ...], value) -> None:
    node = raw
    for part in key[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[key[-1]] = value


def names_file(value: str) -> bool:
    """Whether a path parameter's value names a file or folder (not `train`, `pretrained` or a torchvision
    weights name such as ResNet50_Weights.IMAGENET1K_V2)."""
    return value not in NOT_PATHS and "_Weights." not in value


def anchored(value: str, workspace: Path) -> str:
    """A path as this workspace sees it: absolute ones as they are, relative ones that leave the workspace
    made absolute from it (so an experiment's copy finds them), others left relative to the working folder."""
    if not names_file(value):
        return value
    expanded = os.path.expanduser(value)
    if os.path.isabs(expanded):
        return expanded
    if os.path.normpath(expanded).split(os.sep)[0] == os.pardir:
        return os.path.normpath(workspace / expanded)
    return value


def with_local_paths(raw: dict, params_path: Path) -> dict:
    """`raw` params with this machine's paths and runtime settings (machine.yaml) put in, and paths that
    leave the workspace anchored at it; an unknown key in the local file is an error naming it."""
    workspace = workspace_of(params_path.parent)
    local_file = workspace / LOCAL_FILE
    keys = path_keys(raw)
    settable = keys + [("runtime", key) for key in RUNTIME]
    if local_file.is_file():
        try:
            local = yaml.safe_load(local_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise RdistillError(f"{local_file}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(local, dict):
            raise RdistillError(f"{local_file}: expected `dotted.key: path` lines")
        for dotted, value in local.items():
            key = tuple(str(dotted).split("."))
            if key not in settable:
                known = ", ".join(".".join(k) for k in settable)
                raise RdistillError(f"{local_file}: {dotted}: not a path or runtime parameter of {params_path} "
                                    f"(known: {known})")
            if key in keys and not isinstance(value, str):
                raise RdistillError(f"{local_file}: {dotted}: expected a path, got {value!r}")
            _set(raw, key, value)
    for key in keys:
        value = _get(raw, key)
        if isinstance(value, str):
            _set(raw, key, anchored(value, workspace))
    return raw
