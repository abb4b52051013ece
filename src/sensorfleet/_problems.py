"""Turn parse and validation failures into one readable line per problem.

Shared by every file the node reads (config, identity) so that all of them
report mistakes the same way: ``file: key.path: what was expected (got value)``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import InputError


def _show(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names valid at ``loc`` (used to suggest a fix for a typo)."""
    current: Any = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            return []
        annotation = fields[part].annotation
        current = annotation if isinstance(annotation, type) else None
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


_TYPE_MESSAGES = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "finite_number": "expected a finite number",
    "missing": "is required",
}


def _message(model: type[BaseModel], error: Mapping[str, Any]) -> str:
    kind = error["type"]
    loc = tuple(error["loc"])
    if kind == "extra_forbidden":
        import difflib  # only a mistyped key needs it; a node starting cleanly never does

        hint = difflib.get_close_matches(str(loc[-1]), _allowed_keys(model, loc), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return f"unknown key{suggestion}"
    if kind == "missing":
        return "is required"
    if kind in ("literal_error", "enum"):
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected} (got {_show(error.get('input'))})"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = error.get("ctx", {})
        words = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }
        limit = next(iter(ctx.values()), "")
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {words[kind]} {limit} (got {_show(error.get('input'))})"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    base = _TYPE_MESSAGES.get(kind, str(error["msg"]))
    return f"{base} (got {_show(error.get('input'))})"


def _key_path(loc: Iterable[int | str]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif parts:
            parts.append(f".{part}")
        else:
            parts.append(str(part))
    return "".join(parts) or "(top level)"


def problems_from(source: str, model: type[BaseModel], exc: ValidationError) -> list[str]:
    """One ``source: key.path: message`` line per validation error."""
    lines = []
    for error in exc.errors():
        # Pydantic adds the validator's function name for tagged unions; hide it.
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        lines.append(f"{source}: {_key_path(loc)}: {_message(model, error)}")
    return lines


def validate(source: str, model: type[BaseModel], data: Any) -> Any:
    """Validate ``data`` as ``model`` or raise ``InputError`` naming ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from(source, model, exc)) from None


def parse_mapping(source: str, text: str, fmt: str) -> dict[str, Any]:
    """Parse YAML or JSON text that must hold a mapping at the top level."""
    if "\x00" in text:
        raise InputError([f"{source}: (top level): not a text file (contains NUL bytes)"])
    if not text.strip():
        raise InputError([f"{source}: (top level): file is empty; expected a {fmt} mapping"])
    try:
        data = yaml.safe_load(text) if fmt == "YAML" else json.loads(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid syntax"
        raise InputError([f"{source}: (top level): invalid YAML{where}: {problem}"]) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            [
                f"{source}: (top level): invalid JSON at line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}"
            ]
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            [
                f"{source}: (top level): expected a {fmt} mapping of keys to values "
                f"(got {type(data).__name__})"
            ]
        )
    return data


def read_text(path: str, what: str) -> str:
    """Read a file as UTF-8 text, turning OS errors into one clear line."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise InputError([f"{path}: (file): {what} file not found"]) from None
    except IsADirectoryError:
        raise InputError([f"{path}: (file): is a folder; expected the {what} file"]) from None
    except OSError as exc:
        raise InputError([f"{path}: (file): cannot read {what} file: {exc.strerror}"]) from None
    if b"\x00" in raw:
        raise InputError(
            [f"{path}: (top level): not a text file (binary data); expected the {what} file"]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            [f"{path}: (top level): not UTF-8 text; expected the {what} file"]
        ) from None
