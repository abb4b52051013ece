"""The equipment catalogue: built-in models merged with the user's files, then compiled.

``build_catalogue`` is a pure function of the files' texts (hot reload calls it
again with the new texts); ``load_catalogue`` only reads the files. The files
are merged key by key in order, the built-in one first, so a user file that
says ``models: {compressor: {faults: {leak: {onset_per_hour: 0.01}}}}`` changes
one rate and keeps everything else. A problem is reported against the file
that wrote the offending key: ``file: models.fan.channels.rpm.noize: unknown key``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .._problems import parse_mapping, read_text
from .._pydantic import problems_from
from ..errors import InputError
from ..node.profiles import deep_merge
from .formula import Formula, FormulaError, parse_formula
from .schema import (
    BUILTIN_STATES,
    DEMAND_VARIABLES,
    RESERVED_NAMES,
    CatalogueFile,
    ChannelSpecRaw,
    ModelSpec,
)

BUILTIN_SOURCE = "built-in catalogue (sensorfleet/equipment/builtin.yaml)"
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ChannelSpec:
    """What a reader of the rows needs to know about one channel."""

    name: str
    unit: str
    kind: str
    resolution: float
    decimals: int
    minimum: float | None
    maximum: float | None
    description: str = ""


@dataclass(frozen=True)
class EquipmentModel:
    """One compiled equipment type: the validated spec plus what the simulator derives."""

    name: str
    description: str
    interval_seconds: float
    channels: tuple[ChannelSpec, ...]
    states: tuple[str, ...]
    faults: tuple[str, ...]  # machine faults first, then instrument faults
    machine_faults: tuple[str, ...]
    instrument_faults: tuple[str, ...]
    operating: tuple[bool, ...]  # per state: counts as operating time
    order: tuple[str, ...]  # channels in the order they are computed
    formulas: Mapping[str, Formula]
    spec: ModelSpec = field(repr=False)

    def channel(self, name: str) -> ChannelSpec:
        """The channel called ``name``."""
        return next(c for c in self.channels if c.name == name)


@dataclass(frozen=True)
class Catalogue:
    """Equipment types by name."""

    models: Mapping[str, EquipmentModel]

    def names(self) -> tuple[str, ...]:
        """The type names, sorted."""
        return tuple(sorted(self.models))

    def get(self, type_name: str, where: str = "type") -> EquipmentModel:
        """The model called ``type_name``; an unknown name is an ``InputError`` at ``where``."""
        model = self.models.get(type_name)
        if model is None:
            raise InputError(
                [
                    f"{where}: unknown equipment type {type_name!r} "
                    f"(the catalogue has: {', '.join(self.names())})"
                ]
            )
        return model


@lru_cache(maxsize=1)
def builtin_text() -> str:
    """The built-in catalogue shipped in the package."""
    return resources.files(__package__).joinpath("builtin.yaml").read_text(encoding="utf-8")


def load_catalogue(extra_files: Sequence[Path | str] = ()) -> Catalogue:
    """The built-in catalogue merged with ``extra_files`` (later files win)."""
    texts = [(str(path), read_text(str(path), "equipment catalogue")) for path in extra_files]
    return build_catalogue(texts)


def build_catalogue(files: Sequence[tuple[str, str]] = ()) -> Catalogue:
    """Merge and compile catalogue texts ``(source, text)`` over the built-in one."""
    layers: list[tuple[str, dict[str, Any]]] = [
        (BUILTIN_SOURCE, parse_mapping(BUILTIN_SOURCE, builtin_text(), "YAML"))
    ]
    layers += [(source, parse_mapping(source, text, "YAML")) for source, text in files]
    merged: dict[str, Any] = {}
    for _, raw in layers:
        merged = deep_merge(merged, raw)
    try:
        validated = CatalogueFile.model_validate(merged)
    except ValidationError as exc:
        lines = problems_from("<merged>", CatalogueFile, exc)
        owned = [
            line.replace("<merged>", _owner(tuple(err["loc"]), layers), 1)
            for line, err in zip(lines, exc.errors(), strict=True)
        ]
        raise InputError(owned) from None
    models = {}
    for name, spec in validated.models.items():
        try:
            models[name] = compile_model(name, spec)
        except _SpecProblem as problem:
            loc: Loc = ("models", name, *problem.loc)
            where = ".".join(str(part) for part in loc)
            raise InputError([f"{_owner(loc, layers)}: {where}: {problem.message}"]) from None
    return Catalogue(models)


def _owner(loc: Loc, layers: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The file that wrote the deepest part of ``loc`` (the last one, on a tie)."""
    best, best_depth = layers[0][0], -1
    for source, raw in layers:
        node: Any = raw
        depth = 0
        for part in loc:
            in_mapping = isinstance(node, Mapping) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_mapping or in_list:
                node, depth = node[part], depth + 1
            else:
                break
        if depth >= best_depth and depth > 0:
            best, best_depth = source, depth
    return best


class _SpecProblem(Exception):
    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


def _state_names(spec: ModelSpec) -> tuple[str, ...]:
    operation = spec.operation
    if operation.states is not None:
        names = list(operation.states)
    elif operation.cycle is not None:
        names = list(dict.fromkeys(phase.state for phase in operation.cycle.phases))
        if operation.cycle.pause_state is not None:
            names.append(operation.cycle.pause_state)
    else:
        assert operation.demand is not None
        names = [operation.demand.loaded_state, operation.demand.unloaded_state]
    for name in names:
        if name in BUILTIN_STATES:
            raise _SpecProblem(("operation",), f"state {name!r} is built in; pick another name")
    if len(set(names)) != len(names):
        raise _SpecProblem(("operation",), "a state name appears twice")
    return (*names, *BUILTIN_STATES)


def _operating(spec: ModelSpec, states: tuple[str, ...]) -> tuple[bool, ...]:
    operation = spec.operation
    flags = []
    for name in states:
        if name in BUILTIN_STATES:
            flags.append(False)
        elif operation.states is not None:
            flags.append(operation.states[name].operating)
        elif operation.cycle is not None:
            flags.append(name != operation.cycle.pause_state)
        else:
            flags.append(True)  # a compressor runs its motor loaded and unloaded
    return tuple(flags)


def _decimals(resolution: float) -> int:
    for decimals in range(0, 10):
        if abs(round(resolution, decimals) - resolution) < 1e-12:
            return decimals
    return 9


def _check_per_state(
    loc: Loc, value: float | Mapping[str, float] | None, states: tuple[str, ...]
) -> None:
    if isinstance(value, Mapping):
        for key in value:
            if key != "default" and key not in states:
                raise _SpecProblem(
                    (*loc, key), f"unknown state (the states are default, {', '.join(states)})"
                )
        if "default" not in value and not set(states) <= set(value):
            missing = [s for s in states if s not in value]
            raise _SpecProblem(loc, f"needs a default or a value for {', '.join(missing)}")


def compile_model(name: str, spec: ModelSpec) -> EquipmentModel:
    """Check what the schema alone cannot (names that refer to each other) and compile."""
    states = _state_names(spec)
    channels = spec.channels
    for channel_name in channels:
        if channel_name in RESERVED_NAMES or channel_name.startswith(("is_", "severity_")):
            raise _SpecProblem(
                ("channels", channel_name), "is a variable name formulas use; rename the channel"
            )
    fault_names = (*spec.faults, *spec.instrument_faults)
    clash = set(spec.faults) & set(spec.instrument_faults)
    if clash:
        raise _SpecProblem(
            ("instrument_faults", sorted(clash)[0]), "a machine fault has this name already"
        )
    known = frozenset(
        {*channels, *RESERVED_NAMES, *(f"is_{s}" for s in states)}
        | {f"severity_{f}" for f in spec.faults}
    )
    unavailable = {}
    if spec.operation.demand is None:
        unavailable = {name: "a load/unload (demand) model's variable" for name in DEMAND_VARIABLES}
        known -= DEMAND_VARIABLES
    formulas: dict[str, Formula] = {}
    specs = []
    for channel_name, raw in channels.items():
        loc: Loc = ("channels", channel_name)
        _check_per_state((*loc, "target"), raw.target, states)
        _check_per_state((*loc, "tau_seconds"), raw.tau_seconds, states)
        _check_per_state((*loc, "noise"), raw.noise, states)
        text_key = "formula" if raw.kind == "derived" else "rate"
        text = raw.formula if raw.kind == "derived" else raw.rate
        if text is not None:
            try:
                formulas[channel_name] = parse_formula(text, known, unavailable)
            except FormulaError as exc:
                raise _SpecProblem((*loc, text_key), str(exc)) from None
        low, high = raw.range if raw.range is not None else (None, None)
        specs.append(
            ChannelSpec(
                channel_name,
                raw.unit,
                raw.kind,
                raw.resolution,
                _decimals(raw.resolution),
                low,
                high,
                raw.description,
            )
        )
    _check_faults(spec, states)
    order = _evaluation_order(channels, formulas)
    return EquipmentModel(
        name=name,
        description=spec.description,
        interval_seconds=spec.interval_seconds,
        channels=tuple(specs),
        states=states,
        faults=fault_names,
        machine_faults=tuple(spec.faults),
        instrument_faults=tuple(spec.instrument_faults),
        operating=_operating(spec, states),
        order=order,
        formulas=formulas,
        spec=spec,
    )


def _check_faults(spec: ModelSpec, states: tuple[str, ...]) -> None:
    channels = spec.channels
    for fault_name, fault in spec.faults.items():
        for target, effect in fault.effects.items():
            loc: Loc = ("faults", fault_name, "effects", target)
            if target == "demand":
                if spec.operation.demand is None or effect.mode != "add":
                    raise _SpecProblem(
                        loc, "demand takes an add effect, and only in a demand (load/unload) model"
                    )
                continue
            channel = channels.get(target)
            if channel is None:
                raise _SpecProblem(loc, f"unknown channel (the channels are {', '.join(channels)})")
            if channel.kind == "counter":
                raise _SpecProblem(loc, "a counter moves through its rate, not by an effect")
            digital_modes = ("flip", "stuck", "dropout")
            if effect.mode == "flip" and channel.kind != "digital":
                raise _SpecProblem((*loc, "mode"), "flip applies to digital channels only")
            if channel.kind == "digital" and effect.mode not in digital_modes:
                raise _SpecProblem((*loc, "mode"), "a digital channel takes flip, stuck or dropout")
    for fault_name, instrument in spec.instrument_faults.items():
        if instrument.channel not in channels:
            raise _SpecProblem(
                ("instrument_faults", fault_name, "channel"),
                f"unknown channel {instrument.channel!r} (the channels are {', '.join(channels)})",
            )
    if spec.operation.cycle is not None:
        pause = spec.operation.cycle.pause_state
        if pause is not None and pause in {p.state for p in spec.operation.cycle.phases}:
            raise _SpecProblem(("operation", "cycle", "pause_state"), "is also a phase's state")
    if spec.operation.states is not None:
        total = sum(s.share for s in spec.operation.states.values())
        if abs(total - 1.0) > 1e-6:
            raise _SpecProblem(
                ("operation", "states"), f"the shares must add up to 1 (they add up to {total:g})"
            )
    del states


def _evaluation_order(
    channels: Mapping[str, ChannelSpecRaw], formulas: Mapping[str, Formula]
) -> tuple[str, ...]:
    """Channels sorted so each comes after the channels its formula reads."""
    order: list[str] = []
    done: set[str] = set()
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            loop = " → ".join([*visiting[visiting.index(name) :], name])
            key = "formula" if channels[name].kind == "derived" else "rate"
            raise _SpecProblem(
                ("channels", name, key), f"formulas refer to each other in a loop: {loop}"
            )
        visiting.append(name)
        formula = formulas.get(name)
        for dependency in sorted(formula.names & channels.keys()) if formula else ():
            visit(dependency)
        visiting.pop()
        done.add(name)
        order.append(name)

    for name in channels:
        visit(name)
    return tuple(order)
