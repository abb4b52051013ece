"""Read the node's files and turn parse failures into one readable line per problem.

Shared by every file the node reads (config, identity, catalogues) so that all of them
report mistakes the same way: ``file: key.path: what was expected (got value)``.
Validation is ``_schema`` (msgspec, the node's settings) or ``_pydantic`` (equipment
catalogues and site files, which a classic node never loads).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Iterable
from typing import Any

import yaml

from .errors import InputError

MAX_DEPTH = 64  # levels of nesting a config or identity file may have
MAX_VALUES = 1_000_000  # values after expanding YAML aliases
MAX_FILE_BYTES = 16 * 2**20


def not_regular_file(mode: int) -> str:
    """What a file that is not a regular file is, as the end of a problem line."""
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def show(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unknown_key(key: str, allowed: list[str]) -> str:
    """The problem of a key no schema knows, with the nearest known one as a hint."""
    import difflib  # only a mistyped key needs it; a node starting cleanly never does

    hint = difflib.get_close_matches(key, allowed, n=1)
    return f"unknown key (did you mean '{hint[0]}'?)" if hint else "unknown key"


def key_path(loc: Iterable[int | str]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif parts:
            parts.append(f".{part}")
        else:
            parts.append(str(part))
    return "".join(parts) or "(top level)"


# libyaml's loader when PyYAML has it: the same safe types, ten times faster, and it refuses
# thousands of nesting levels in microseconds where the pure-Python one recurses for seconds.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own depth limit
            raise RecursionError from None
        # Rare, so parse again with the pure-Python loader: it names the exact spot.
        return yaml.safe_load(text)


def _too_deep(source: str) -> str:
    return f"{source}: (top level): nested too deeply (at most {MAX_DEPTH} levels)"


class _StrictJSONError(ValueError):
    """Text Python's json module accepts but JSON does not, or keys that hide each other."""


class _Constant:
    """Where the text said NaN, Infinity or -Infinity (refused once its key is known)."""

    def __init__(self, name: str) -> None:
        self.name = name


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            # Python keeps the last one silently; a reader who fixed the first never knows.
            raise _StrictJSONError(f"{key}: appears twice in one object; keep one of them")
        constant = _constant_in(value)
        if constant is not None:
            raise _StrictJSONError(f"{key}: {_constant_problem(constant)}")
        found[key] = value
    return found


def _constant_in(value: Any) -> _Constant | None:
    """A constant in ``value`` or its lists (objects inside were checked by their own hook)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _Constant):
            return item
        if isinstance(item, list):
            pending.extend(item)
    return None


def _constant_problem(constant: _Constant) -> str:
    return f"{constant.name} is not valid JSON; expected a finite number, text or null"


def _load_json(text: str) -> Any:
    """JSON as the standard defines it: no NaN or Infinity, no key twice in one object."""
    data = json.loads(text, parse_constant=_Constant, object_pairs_hook=_unique_keys)
    constant = _constant_in(data)  # outside any object
    if constant is not None:
        raise _StrictJSONError(f"(top level): {_constant_problem(constant)}")
    return data


def parse_mapping(source: str, text: str, fmt: str) -> dict[str, Any]:
    """Parse YAML or JSON text that must hold a mapping at the top level."""
    if "\x00" in text:
        raise InputError([f"{source}: (top level): not a text file (contains NUL bytes)"])
    if not text.strip():
        raise InputError([f"{source}: (top level): file is empty; expected a {fmt} mapping"])
    try:
        data = _load_yaml(text) if fmt == "YAML" else _load_json(text)
    except RecursionError:
        raise InputError([_too_deep(source)]) from None
    except _StrictJSONError as exc:
        raise InputError([f"{source}: {exc}"]) from None
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
    problem = _shape_problem(data)
    if problem:
        raise InputError([f"{source}: (top level): {problem}"])
    return data


def _shape_problem(data: Any) -> str | None:
    """Too deep, or too many values once YAML aliases are expanded (an "alias bomb").

    PyYAML builds an alias as a shared reference, so parsing a bomb is cheap;
    it explodes only when something walks it. Sizes are counted once per
    shared object (memoised by identity), so this check itself stays cheap.
    """
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    # Iterative post-order walk: no recursion limit to hit.
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key = id(node)
        children = list(node.values()) if isinstance(node, dict) else node
        if done:
            size, depth = 1, 1
            for child in children:
                if isinstance(child, dict | list):
                    size += sizes[id(child)]
                    depth = max(depth, depths[id(child)] + 1)
                else:
                    size += 1
            sizes[key], depths[key] = size, depth
            if depth > MAX_DEPTH:
                return f"nested too deeply (at most {MAX_DEPTH} levels)"
            if size > MAX_VALUES:
                return (
                    f"too many values once YAML aliases are expanded (more than {MAX_VALUES:,}; "
                    "an alias bomb?)"
                )
            continue
        if key in sizes:
            continue
        if len(stack) > 10 * MAX_VALUES:
            return f"too many values (more than {MAX_VALUES:,})"
        stack.append((node, True))
        stack.extend((child, False) for child in children if isinstance(child, dict | list))
    return None


def read_text(path: str, what: str) -> str:
    """Read a file as UTF-8 text, turning OS errors into one clear line.

    Only a regular file is read: a FIFO would block start-up (or the reload
    watcher) for good, and a device such as /dev/zero never ends. The file is
    opened non-blocking and checked on the open descriptor, so a swap between
    check and open cannot slip one through.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(descriptor, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise InputError(
                    [f"{path}: (file): {not_regular_file(mode)}; expected the {what} file"]
                )
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise InputError(
                [f"{path}: (file): over {MAX_FILE_BYTES // 2**20} MB; expected the {what} file"]
            )
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
