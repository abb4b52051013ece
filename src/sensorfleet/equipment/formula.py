"""Formulas in the catalogue: small arithmetic over arrays, parsed once, never ``eval``-ed.

A derived channel's ``formula`` or a counter's ``rate`` is a Python-like
expression over channel names and the model's variables (``production``,
``outdoor_temp_c``, ``is_running`` ...). It is parsed with ``ast`` and turned
into a tree of numpy calls; anything but numbers, names, arithmetic,
comparisons and the functions in ``FUNCTIONS`` is refused when the catalogue
loads, with the formula's key in the message.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Value = FloatArray | float
Env = Mapping[str, Value]
Evaluator = Callable[[Env], Value]

_BINARY: dict[type[ast.operator], Callable[[Value, Value], Value]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
    ast.Pow: np.power,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Value, Value], Value]] = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}


def _where(condition: Value, then: Value, otherwise: Value) -> Value:
    return np.where(np.asarray(condition) > 0, then, otherwise)


def _clip(value: Value, low: Value, high: Value) -> Value:
    return np.minimum(np.maximum(value, low), high)


# name → (function, number of arguments)
FUNCTIONS: dict[str, tuple[Callable[..., Value], int]] = {
    "exp": (np.exp, 1),
    "log": (np.log, 1),
    "sqrt": (np.sqrt, 1),
    "abs": (np.abs, 1),
    "sin": (np.sin, 1),  # periodic terms: a thermostat hunting, a pulsating load
    "min": (np.minimum, 2),
    "max": (np.maximum, 2),
    "clip": (_clip, 3),
    "where": (_where, 3),
}


class FormulaError(ValueError):
    """A formula that cannot be used; the message says why."""


@dataclass(frozen=True)
class Formula:
    """A parsed formula: its source text, the names it reads, and its evaluator."""

    text: str
    names: frozenset[str]
    evaluate: Evaluator


def parse_formula(
    text: str, known: frozenset[str], unavailable: Mapping[str, str] | None = None
) -> Formula:
    """Parse ``text``; every name it reads must be in ``known``.

    ``unavailable`` maps names that exist elsewhere but not here to the reason,
    which the error then gives.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"invalid formula {text!r}: {exc.msg}") from None
    names: set[str] = set()
    evaluate = _compile(tree.body, _Names(known, unavailable or {}), names, text)
    return Formula(text, frozenset(names), evaluate)


@dataclass(frozen=True)
class _Names:
    known: frozenset[str]
    unavailable: Mapping[str, str]


def _compile(node: ast.AST, scope: _Names, names: set[str], text: str) -> Evaluator:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise FormulaError(f"formula {text!r}: use 1 or 0, not True or False")
        number = float(node.value)
        return lambda env: number
    if isinstance(node, ast.Name):
        name = node.id
        if name in scope.unavailable:
            raise FormulaError(f"formula {text!r} reads {name!r}: {scope.unavailable[name]}")
        if name not in scope.known:
            raise FormulaError(
                f"formula {text!r} reads {name!r}, which is neither a channel nor a variable"
            )
        names.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left = _compile(node.left, scope, names, text)
        right = _compile(node.right, scope, names, text)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _compile(node.operand, scope, names, text)
        if isinstance(node.op, ast.UAdd):
            return inner
        return lambda env: np.negative(inner(env))
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        cmp = _COMPARE[type(node.ops[0])]
        left = _compile(node.left, scope, names, text)
        right = _compile(node.comparators[0], scope, names, text)
        return lambda env: np.asarray(cmp(left(env), right(env)), dtype=np.float64)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        entry = FUNCTIONS.get(node.func.id)
        if entry is None:
            allowed = ", ".join(sorted(FUNCTIONS))
            raise FormulaError(
                f"formula {text!r} calls {node.func.id!r}; the functions are {allowed}"
            )
        function, arity = entry
        if len(node.args) != arity:
            raise FormulaError(
                f"formula {text!r}: {node.func.id} takes {arity} argument(s), not {len(node.args)}"
            )
        args = [_compile(arg, scope, names, text) for arg in node.args]
        return lambda env: function(*(arg(env) for arg in args))
    snippet = ast.unparse(node) if isinstance(node, ast.expr) else type(node).__name__
    raise FormulaError(
        f"formula {text!r}: {snippet!r} is not allowed (numbers, names, + - * / **, "
        "< <= > >= and function calls only)"
    )
