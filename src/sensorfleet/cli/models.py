"""``sensorfleet models``: the equipment catalogue, one model a line, name first;
``sensorfleet models show NAME``: one model in full, with the sources of its figures."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from ..node.config import load_config
from ..node.inputs import DEFAULT_CONFIG, NodeInputs

if TYPE_CHECKING:
    from ..equipment import Catalogue, EquipmentModel
    from ..equipment.schema import Effect, FaultSpec, InstrumentFaultSpec, ModelSpec


def register(subparsers: Any) -> None:
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        metavar="PATH",
        help=f"config file naming extra catalogue files (default: $CONFIG_FILE, else "
        f"./{DEFAULT_CONFIG} if present, else the built-in catalogue alone)",
    )
    parser = subparsers.add_parser(
        "models",
        parents=[config],
        help="list the equipment models an identity's type may name",
        description=(
            "List the equipment catalogue: the built-in models merged with the catalogue "
            "files of equipment.catalogues in the config, one model a line: name, reading "
            "interval, channels with units, faults, description. `models show NAME` prints "
            "one model in full."
        ),
    )
    parser.add_argument(
        "--registers",
        action="store_true",
        help="also print each model's Modbus register map (address, encoding, name, meaning)",
    )
    parser.set_defaults(handler=handle)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser(
        "show",
        parents=[config],
        help="print one model: channels, states, failure modes and their sources",
        description=(
            "Print one equipment model: its schedule, states, channels, failure modes, "
            "instrument faults, maintenance, and the sources its figures rest on."
        ),
    )
    show.add_argument("name", metavar="NAME", help="the model's type name")
    show.set_defaults(handler=handle_show)


def _catalogue(config_path: str | None) -> Catalogue:
    from ..equipment import load_catalogue

    inputs = NodeInputs.locate(config_path)
    config = load_config(inputs.config_path, inputs.config_overrides)
    return load_catalogue(config.equipment.catalogues)


def describe(config_path: str | None) -> list[str]:
    """The catalogue as lines: ``name  every N s  channel (unit), …  faults: …  description``."""
    catalogue = _catalogue(config_path)
    width = max(len(name) for name in catalogue.names())
    lines = []
    for name in catalogue.names():
        model = catalogue.get(name)
        channels = ", ".join(
            f"{channel.name} ({channel.unit})" if channel.unit else channel.name
            for channel in model.channels
        )
        faults = ", ".join(model.faults) or "none"
        description = " ".join(model.description.split())
        lines.append(
            f"{name:<{width}}  every {model.interval_seconds:g} s  {channels}  "
            f"faults: {faults}  {description}"
        )
    return lines


def register_lines(config_path: str | None) -> list[str]:
    """Each model's Modbus register map: a heading line, then one line per value."""
    from ..edges.faces.registers import register_map

    inputs = NodeInputs.locate(config_path)
    config = load_config(inputs.config_path, inputs.config_overrides)
    catalogue = _catalogue(config_path)
    hidden = config.labels.mode == "hidden"
    lines = []
    for name in catalogue.names():
        lines.append(f"{name} (Modbus unit registers{', labels hidden' if hidden else ''}):")
        for register in register_map(catalogue.get(name), hidden):
            lines.append(
                f"  {register.address:>3}  {register.encoding:<7}  {register.name:<20}  "
                f"{register.meaning}"
            )
    return lines


_UNITS = (("d", 86_400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))


def _unit(seconds: float) -> tuple[str, float]:
    """The largest unit in which ``seconds`` is at least one."""
    return next(((u, size) for u, size in _UNITS if seconds >= size), _UNITS[-1])


def _span(seconds: tuple[float, float]) -> str:
    """A duration range, readable: ``7-21 d``, ``30-240 min``, ``5 min-14 d``."""
    lo, hi = seconds
    unit, size = _unit(lo)
    if lo == hi:
        return f"{lo / size:.3g} {unit}"
    if hi / size <= 1000:  # one unit reads well for both ends
        return f"{lo / size:.3g}-{hi / size:.3g} {unit}"
    top, top_size = _unit(hi)
    return f"{lo / size:.3g} {unit}-{hi / top_size:.3g} {top}"


def _hours(hour: float) -> str:
    return f"{int(hour):02d}"


def _operation(spec: ModelSpec) -> list[str]:
    operation = spec.operation
    if operation.states is not None:
        return [
            f"  {name}: {state.share:.0%} of the time, {_span((state.mean_dwell_seconds,) * 2)} "
            f"a visit{'' if state.operating else ', not operating time'}"
            for name, state in operation.states.items()
        ]
    if operation.cycle is not None:
        phases = " → ".join(f"{p.state} {_span(p.seconds)}" for p in operation.cycle.phases)
        pause = operation.cycle.pause_state
        return [f"  cycle: {phases}" + (f", paused in {pause}" if pause else "")]
    demand = operation.demand
    assert demand is not None  # the schema allows exactly one of the three
    return [
        f"  load/unload: {demand.loaded_state}/{demand.unloaded_state}, capacity "
        f"{demand.capacity_m3_min:g} m³/min, demand {demand.demand_m3_min:g} m³/min at full "
        f"production, storage {demand.storage_m3:g} m³"
    ]


def _effect(channel: str, effect: Effect) -> str:
    sign = {"add": f"{effect.to:+g}", "scale": f"×{effect.to:g}", "set": f"→ {effect.to:g}"}
    text = f"{channel} {sign.get(effect.mode, effect.mode)}"
    if effect.lag_seconds:
        text += f" (lag {_span((effect.lag_seconds,) * 2)})"
    if effect.bursts is not None:
        text += f" on {effect.bursts:.0%} of readings"
    return text


def _fault(name: str, fault: FaultSpec) -> str:
    course = _span(fault.duration_seconds) if fault.duration_seconds else "until serviced"
    how = {"step": f"step, lasting {course}", "linear": f"linear over {course}"}.get(
        fault.progression, f"exponential over {course}"
    )
    if fault.trips:
        how = "step, trips at once"
    effects = ", ".join(_effect(c, e) for c, e in fault.effects.items()) or "no channel effect"
    severity = (
        ""
        if fault.severity == (1.0, 1.0)
        else f", severity {fault.severity[0]:g}-{fault.severity[1]:g}"
    )
    return (
        f"  {name}: {how}, {fault.onset_per_hour:g} per operating hour{severity}: {effects}. "
        f"{' '.join(fault.description.split())}"
    ).rstrip()


def _instrument(name: str, fault: InstrumentFaultSpec) -> str:
    amount = {"drift": f" {fault.amount:g}/h", "offset": f" {fault.amount:+g}"}.get(fault.mode, "")
    return (
        f"  {name}: {fault.channel} {fault.mode}{amount}, {fault.onset_per_hour:g} per hour, "
        f"lasting {_span(fault.duration_seconds)}. {' '.join(fault.description.split())}"
    ).rstrip()


def show(model: EquipmentModel) -> list[str]:
    """One model as lines: what it is, how it runs, what it measures, how it fails, and why."""
    spec = model.spec
    schedule = ", ".join(
        f"{s.name} {_hours(s.start_hour)}-{_hours(s.end_hour)} ×{s.factor:g}"
        for s in spec.schedule.shifts
    )
    lines = [
        f"{model.name}: {' '.join(model.description.split())}",
        f"every {model.interval_seconds:g} s; shifts {schedule}; weekends ×"
        f"{spec.schedule.weekend_factor:g}; trips at health {spec.failure_threshold:g}",
        "states:",
        *_operation(spec),
        "  fault, maintenance: built in",
        "channels:",
    ]
    for channel in model.channels:
        raw = spec.channels[channel.name]
        scope = (
            f" [{channel.minimum:g}, {channel.maximum:g}]" if channel.minimum is not None else ""
        )
        unit = f" {channel.unit}" if channel.unit else ""
        detail = f" = {raw.formula}" if raw.formula else f", rate {raw.rate}" if raw.rate else ""
        text = f"  {channel.name} ({channel.kind}{unit}{scope}){detail}"
        lines.append(f"{text}. {channel.description}" if channel.description else text)
    lines.append("failure modes:")
    lines += [_fault(name, fault) for name, fault in spec.faults.items()] or ["  none"]
    lines.append("instrument faults:")
    lines += [_instrument(n, f) for n, f in spec.instrument_faults.items()] or ["  none"]
    service = spec.maintenance
    parts = [f"lasting {_span(service.duration_seconds)}"]
    if service.every_operating_hours:
        parts.insert(0, f"every {service.every_operating_hours:g} operating hours")
    if service.health_below:
        parts.insert(0, f"when health falls below {service.health_below:g}")
    if service.after_trip_seconds is not None:
        parts.insert(0, f"{_span((service.after_trip_seconds,) * 2)} after a trip")
    if len(parts) == 1:  # no trigger: a service starts only by command
        parts.insert(0, "by command only")
    lines.append(f"maintenance: {', '.join(parts)}")
    lines.append("sources:")
    lines += [f"  {figure}: {' '.join(text.split())}" for figure, text in spec.sources.items()]
    if not spec.sources:
        lines.append("  none given")
    return lines


def handle(args: argparse.Namespace) -> int:
    lines = describe(args.config)
    if args.registers:
        lines += register_lines(args.config)
    for line in lines:
        sys.stdout.write(f"{line}\n")
    return 0


def handle_show(args: argparse.Namespace) -> int:
    model = _catalogue(args.config).get(args.name, where="models show NAME")
    for line in show(model):
        sys.stdout.write(f"{line}\n")
    return 0
