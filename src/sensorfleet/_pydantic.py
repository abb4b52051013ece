"""Validation failures of pydantic models as one readable line per problem.

For the files only equipment models and sites read (catalogues, site files): a classic
node validates its settings with msgspec (``_schema``) and never loads pydantic.
Lines have the node's form: ``file: key.path: what was expected (got value)``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from ._problems import key_path, show, unknown_key
from .errors import InputError


def _flat_types(annotation: Any) -> set[Any]:
    found = {annotation}
    for arg in typing.get_args(annotation):
        found |= _flat_types(arg)
    return found


def refuse_bool_as_number(model: type[BaseModel], field: str | None, value: Any) -> Any:
    """Reject ``true``/``false`` where a number is expected (pydantic would take it as 1/0).

    Used as a ``mode="before"`` validator on every field of the settings models.
    """
    if field is None:
        return value
    annotation = model.model_fields[field].annotation
    types = _flat_types(annotation)
    if bool in types or Any in types:
        return value
    numeric = bool(types & {int, float})
    if isinstance(value, bool) and numeric:
        return _bool_problem(value)
    if isinstance(value, dict) and numeric:
        for key, item in value.items():
            if isinstance(item, bool):
                return _bool_problem(item, f"{key}: ")
    return value


def _bool_problem(value: bool, where: str = "") -> Any:
    raise ValueError(f"{where}expected a number, not true or false (got {str(value).lower()})")


class Strict(BaseModel):
    """A validated section: frozen, every key known, every float finite, no bool as a number."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_bool_as_number(cls, info.field_name, value)


def _allowed_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names valid at ``loc`` (used to suggest a fix for a typo)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) and typing.get_origin(current) is list:
            current = typing.get_args(current)[0]  # an item of a list of models
            continue
        fields = getattr(current, "model_fields", None)
        if fields is None or not isinstance(part, str) or part not in fields:
            return []
        annotation = fields[part].annotation
        is_list = typing.get_origin(annotation) is list
        current = annotation if isinstance(annotation, type) or is_list else None
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
        return unknown_key(str(loc[-1]), _allowed_keys(model, loc))
    if kind == "missing":
        return "is required"
    if kind in ("literal_error", "enum"):
        expected = error.get("ctx", {}).get("expected", "")
        return f"must be one of {expected} (got {show(error.get('input'))})"
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
        return f"must be {words[kind]} {limit} (got {show(error.get('input'))})"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    base = _TYPE_MESSAGES.get(kind, str(error["msg"]))
    return f"{base} (got {show(error.get('input'))})"


def problems_from(source: str, model: type[BaseModel], exc: ValidationError) -> list[str]:
    """One ``source: key.path: message`` line per validation error."""
    lines = []
    for error in exc.errors():
        # Pydantic adds the validator's function name for tagged unions; hide it.
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        lines.append(f"{source}: {key_path(loc)}: {_message(model, error)}")
    return lines


def validate(source: str, model: type[BaseModel], data: Any) -> Any:
    """Validate ``data`` as ``model`` or raise ``InputError`` naming ``source``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from(source, model, exc)) from None
