"""Every parameter in effect, defaults included, as YAML annotated with the schema's descriptions."""
from __future__ import annotations

from collections.abc import Iterator

import yaml
from pydantic import BaseModel


def flow(value) -> str:
    """A value as one line of YAML (flow style)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).split("\n...")[0].strip()


def description(model_class: type[BaseModel], name: str, value) -> str:
    """A field's docstring, or else the first line of its section's own class docstring."""
    text = model_class.model_fields[name].description
    if not text and isinstance(value, BaseModel) and type(value).__dict__.get("__doc__"):
        text = type(value).__doc__.strip().splitlines()[0]
    return " ".join((text or "").split())


def annotated_lines(model: BaseModel, depth: int = 0, complete: bool = False) -> Iterator[str]:
    """`key: value  # description` lines of a model's fields, nested sections indented below their key;
    `complete`: unset optional fields too (`null`), so that every key exists for `dvc exp run -S`."""
    pad = "  " * depth
    for name in type(model).model_fields:
        value = getattr(model, name)
        note = description(type(model), name, value)
        comment = f"  # {note}" if note else ""
        if (not complete and isinstance(value, BaseModel)
                and all(f.default is None for f in type(value).model_fields.values())):
            yield f"{pad}{name}: {flow(value.model_dump(exclude_none=True))}{comment}"  # e.g. a recipe's changes
        elif isinstance(value, BaseModel):
            yield f"{pad}{name}:{comment}"
            yield from annotated_lines(value, depth + 1, complete)
        elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
            yield f"{pad}{name}:{comment}"
            for key, entry in value.items():
                yield f"{pad}  {key}:"
                yield from annotated_lines(entry, depth + 2, complete)
        else:
            yield f"{pad}{name}: {flow(value)}{comment}"


def annotated_yaml(model: BaseModel, complete: bool = False) -> str:
    """The whole model as annotated YAML that reads back to the same values (`complete`: every key written)."""
    return "\n".join(annotated_lines(model, complete=complete)) + "\n"
