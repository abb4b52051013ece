"""Validate parsed YAML/JSON into frozen msgspec structs, every problem as one line.

The node's settings (config, identity, profiles) are msgspec structs: msgspec costs a
node about 1.5 MB of memory where pydantic and its schema builder cost about 10
(docs/footprint.md). msgspec stops at the first problem and words it for APIs, so this
module walks a struct's fields itself: each value is converted by msgspec on its own,
and every problem in a file is reported at once as ``source: key.path: what was expected
(got value)``, as users of the node have always seen them.

A struct declares what msgspec's types cannot say in ``Strict``'s class variables: checks
on a field's raw value (``before``) or on its converted value (``after``), and fields a
file may not set (``internal``). Checks across fields go in ``__post_init__``. Each check
raises ``ValueError`` with the end of the problem line.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, TypeVar

import msgspec

from ._problems import key_path, show, unknown_key
from .errors import InputError

Check = Callable[[Any], Any]
StructT = TypeVar("StructT", bound="Strict")


class Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A validated settings section: frozen, every key known, every float finite."""

    # Field name -> check of the value as given (may return a normalised value).
    before: ClassVar[Mapping[str, Check]] = {}
    # Field name -> check of the converted value.
    after: ClassVar[Mapping[str, Check]] = {}
    # Fields set by code (from which keys were given), never by a file.
    internal: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def derived(cls, given: frozenset[str]) -> dict[str, Any]:
        """Values of ``internal`` fields, from the keys the data gave."""
        return {}


class Secret:
    """Text never shown: ``repr`` masks it, dumps for display carry a fingerprint."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Invalid:
    """Marks a value that failed (its problem is already recorded)."""


_INVALID = _Invalid()
_Loc = tuple[int | str, ...]


class _Problems:
    def __init__(self) -> None:
        self.found: list[tuple[_Loc, str]] = []

    def add(self, loc: _Loc, message: str) -> _Invalid:
        self.found.append((loc, message))
        return _INVALID


def validate(source: str, cls: type[StructT], data: Any) -> StructT:
    """``data`` as ``cls``, or ``InputError`` with one ``source: key: problem`` line each."""
    result, problems = convert(cls, data)
    if result is None:
        raise InputError([f"{source}: {dotted}: {problem}" for dotted, problem in problems])
    return result


def convert(cls: type[StructT], data: Any) -> tuple[StructT | None, list[tuple[str, str]]]:
    """``data`` as ``cls``, or None and ``(key.path, problem)`` for every problem."""
    problems = _Problems()
    result = _struct(data, cls, (), problems)
    if problems.found or isinstance(result, _Invalid):
        return None, [(key_path(loc), message) for loc, message in problems.found]
    return typing.cast(StructT, result), []


def _struct(value: Any, cls: type[Strict], loc: _Loc, problems: _Problems) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        return problems.add(loc, f"expected a mapping of keys to values (got {show(value)})")
    fields = _fields(cls)
    before_count = len(problems.found)
    values: dict[str, Any] = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            problems.add((*loc, key), unknown_key(str(key), list(fields)))
            continue
        values[key] = _field(item, cls, key, field.type, (*loc, key), problems)
    for name, field in fields.items():
        if field.required and name not in value:
            problems.add((*loc, name), "is required")
    if len(problems.found) > before_count:
        return _INVALID
    try:
        return cls(**values, **cls.derived(frozenset(values)))
    except ValueError as exc:  # a check across fields, in __post_init__
        return problems.add(loc, str(exc))


@functools.cache
def _fields(cls: type[Strict]) -> dict[str, msgspec.structs.FieldInfo]:
    return {f.name: f for f in msgspec.structs.fields(cls) if f.name not in cls.internal}


def _field(
    value: Any, cls: type[Strict], name: str, tp: Any, loc: _Loc, problems: _Problems
) -> Any:
    try:
        if name in cls.before:
            value = cls.before[name](value)
    except ValueError as exc:
        return problems.add(loc, str(exc))
    converted = _convert(value, tp, loc, problems)
    if isinstance(converted, _Invalid) or name not in cls.after:
        return converted
    try:
        return cls.after[name](converted)
    except ValueError as exc:
        return problems.add(loc, str(exc))


def _convert(value: Any, tp: Any, loc: _Loc, problems: _Problems) -> Any:
    """``value`` as type ``tp``; containers are walked so a problem names its key."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated and typing.get_origin(tp.__origin__) in (dict, list, tuple):
        converted = _convert(value, tp.__origin__, loc, problems)
        if isinstance(converted, _Invalid):
            return converted
        return _leaf(converted, tp, loc, problems, shown=value)  # the constraints (Meta)
    if isinstance(tp, type) and issubclass(tp, Strict):
        return _struct(value, tp, loc, problems)
    if tp is Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            return problems.add(loc, f"expected text (got {show(value)})")
        return Secret(value)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(tp)):
            return None
        if len(options) == 1:
            return _convert(value, options[0], loc, problems)
    if origin is dict and isinstance(value, Mapping):
        key_type, value_type = typing.get_args(tp)
        result = {}
        for key, item in value.items():
            good_key = _leaf(key, key_type, (*loc, key), problems)
            good_item = _convert(item, value_type, (*loc, key), problems)
            result[good_key] = good_item
        return _INVALID if _any_invalid([*result, *result.values()]) else result
    if origin in (list, tuple) and isinstance(value, list | tuple):
        args = typing.get_args(tp)
        if origin is tuple and len(args) != len(value):
            return problems.add(loc, f"expected a list of {len(args)} (got {show(value)})")
        item_types = args if origin is tuple else [args[0]] * len(value)
        items = [
            _convert(v, t, (*loc, i), problems)
            for i, (v, t) in enumerate(zip(value, item_types, strict=True))
        ]
        return _INVALID if _any_invalid(items) else origin(items)
    return _leaf(value, tp, loc, problems)


def _any_invalid(values: list[Any]) -> bool:
    return any(isinstance(v, _Invalid) for v in values)


def _leaf(value: Any, tp: Any, loc: _Loc, problems: _Problems, shown: Any = _INVALID) -> Any:
    shown = value if shown is _INVALID else shown
    base = tp.__origin__ if typing.get_origin(tp) is typing.Annotated else tp
    if isinstance(value, float) and not math.isfinite(value) and base in (int, float):
        return problems.add(loc, f"expected a finite number (got {show(shown)})")
    if isinstance(value, float) and value.is_integer() and base is int:
        value = int(value)  # 5.0 where a whole number is expected is 5
    try:
        # Not strict: numbers written as text ("1.0e3", which YAML reads as text) count,
        # as 0/1 and "true"/"false" do for true or false; true is never a number.
        converted = msgspec.convert(value, tp, strict=False)
    except msgspec.ValidationError as exc:
        return problems.add(loc, _message(str(exc), shown, tp))
    if isinstance(converted, float) and not math.isfinite(converted):
        return problems.add(loc, f"expected a finite number (got {show(shown)})")
    return converted


_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "bool": "true or false",
    "object": "a mapping of keys to values",
    "array": "a list",
    "null": "null",
}
_BOUND_WORDS = {">": "greater than", ">=": "at least", "<": "less than", "<=": "at most"}
_WRONG_TYPE = re.compile(r"Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`")
_BOUND = re.compile(
    r"Expected `(?P<kind>\w+)`(?P<length> of length)? (?P<op>[<>]=?) (?P<limit>\S+)"
)


def _message(error: str, value: Any, tp: Any) -> str:
    """msgspec's problem with one value, in the node's words."""
    error = error.split(" - at `")[0]
    got = show(value)
    wrong = _WRONG_TYPE.fullmatch(error)
    if wrong:
        expected = [t.strip() for t in wrong["expected"].split("|")]
        numeric = {"int", "float"} & set(expected)
        if wrong["got"] == "bool" and numeric:
            return f"expected a number, not true or false (got {got})"
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in expected)
        return f"expected {words} (got {got})"
    bound = _BOUND.fullmatch(error)
    if bound:
        limit = float(bound["limit"])
        shown = int(limit) if limit.is_integer() else limit
        if bound["length"]:
            unit = "character" if bound["kind"] == "str" else "item"
            plural = "" if shown == 1 else "s"
            return f"must have {_BOUND_WORDS[bound['op']]} {shown} {unit}{plural} (got {got})"
        return f"must be {_BOUND_WORDS[bound['op']]} {shown} (got {got})"
    if error.startswith("Invalid enum value"):
        return f"must be one of {_choices(tp)} (got {got})"
    return f"{error} (got {got})"


def _choices(tp: Any) -> str:
    """The values of the first ``Literal`` in ``tp``: ``'a', 'b' or 'c'``."""
    pending = [tp]
    while pending:
        current = pending.pop(0)
        if typing.get_origin(current) is Literal:
            shown = [repr(v) for v in typing.get_args(current)]
            return " or ".join([", ".join(shown[:-1]), shown[-1]]) if len(shown) > 1 else shown[0]
        pending.extend(typing.get_args(current))
    return "the allowed values"


def field_names(cls: type[Strict]) -> tuple[str, ...]:
    """The keys a file may set in ``cls``, in order."""
    return tuple(name for name in cls.__struct_fields__ if name not in cls.internal)


def as_data(value: Any, *, display: bool = False) -> Any:
    """Structs as plain dicts, lists and scalars (``internal`` fields left out).

    ``display``: JSON-ready, for status, logs and comparisons: a ``Secret`` becomes a
    fingerprint (that it changed, never it) and tuples lists.
    """
    if isinstance(value, Strict):
        return {
            name: as_data(getattr(value, name), display=display)
            for name in field_names(type(value))
        }
    if isinstance(value, dict):
        return {key: as_data(item, display=display) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [as_data(item, display=display) for item in value]
        return items if display or isinstance(value, list) else tuple(items)
    if isinstance(value, Secret) and display:
        return fingerprint(value)
    return value


def fingerprint(value: Secret | None) -> str | None:
    """A secret as status, logs and the config hash show it: that it changed, never it."""
    if value is None:
        return None
    return "sha256:" + hashlib.sha256(value.get_secret_value().encode()).hexdigest()[:8]
