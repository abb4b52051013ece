"""The equipment catalogue: built-in models, user files merged over them, strict one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import BUILT_IN_MODELS

from sensorfleet.equipment import build_catalogue, load_catalogue
from sensorfleet.equipment.formula import parse_formula
from sensorfleet.errors import InputError


def problem(tmp_path: Path, text: str, name: str = "plant.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as caught:
        load_catalogue([path])
    assert caught.value.exit_code == 2
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


def test_builtin_catalogue_has_the_reference_models() -> None:
    """The package ships the reference types, each with states, faults and channels."""
    catalogue = load_catalogue()
    assert catalogue.names() == BUILT_IN_MODELS
    compressor = catalogue.get("compressor")
    assert compressor.interval_seconds == 1
    assert compressor.states == ("loaded", "unloaded", "fault", "maintenance")
    assert {"leak", "efficiency_loss", "bearing_fault"} <= set(compressor.machine_faults)
    assert compressor.channel("power_kw").unit == "kW"
    motor = catalogue.get("motor")
    assert motor.interval_seconds == 10
    assert {"bearing_wear", "belt_slip", "overload"} <= set(motor.machine_faults)
    assert {"refrigerant_leak", "dirty_coils", "compressor_fault"} <= set(
        catalogue.get("hvac").machine_faults
    )
    assert {"stall", "overspeed", "chatter"} <= set(catalogue.get("fan").machine_faults)
    for name in BUILT_IN_MODELS:
        model = catalogue.get(name)
        assert len(set(model.faults)) == len(model.faults)
        assert model.faults == (*model.machine_faults, *model.instrument_faults)


def test_user_file_changes_one_fault_rate_and_keeps_the_rest(tmp_path: Path) -> None:
    """A file naming one key of one fault changes that key; every other value stays built in."""
    path = tmp_path / "rates.yaml"
    path.write_text(
        "models:\n  compressor:\n    faults:\n      leak:\n        onset_per_hour: 0.01\n"
    )
    builtin = load_catalogue().get("compressor").spec
    changed = load_catalogue([path]).get("compressor").spec
    assert changed.faults["leak"].onset_per_hour == 0.01
    assert changed.faults["leak"].effects == builtin.faults["leak"].effects
    assert changed.faults["bearing_fault"] == builtin.faults["bearing_fault"]
    assert changed.channels == builtin.channels


def test_user_file_adds_a_model(tmp_path: Path) -> None:
    """A file can add a whole new type beside the built-in ones."""
    path = tmp_path / "beacon.yaml"
    path.write_text(
        "models:\n"
        "  beacon:\n"
        "    interval_seconds: 60\n"
        "    operation: {states: {lit: {share: 0.5, mean_dwell_seconds: 600},"
        " dark: {share: 0.5, mean_dwell_seconds: 600}}}\n"
        "    channels:\n"
        "      lamp_on: {kind: digital, target: {default: 0, lit: 1}}\n"
    )
    catalogue = load_catalogue([path])
    assert catalogue.names() == tuple(sorted((*BUILT_IN_MODELS, "beacon")))
    assert catalogue.get("beacon").interval_seconds == 60
    assert catalogue.get("beacon").states == ("lit", "dark", "fault", "maintenance")


def test_later_files_win_and_merging_is_a_function_of_contents() -> None:
    """Files merge in order (the last one wins) and the same texts give the same catalogue."""
    first = ("a.yaml", "models: {fan: {interval_seconds: 2}}")
    second = ("b.yaml", "models: {fan: {interval_seconds: 3}}")
    assert build_catalogue([first, second]).get("fan").interval_seconds == 3
    assert build_catalogue([second, first]).get("fan").interval_seconds == 2
    assert build_catalogue([first]).get("fan").spec == build_catalogue([first]).get("fan").spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "models:\n  fan:\n    channels:\n      rpm:\n        noize: 3\n",
            "models.fan.channels.rpm.noize: unknown key",
        ),
        ("modles: {}\n", "modles: unknown key (did you mean 'models'?)"),
        (
            "models: {compressor: {faults: {leak: {onset_per_hour: -1}}}}\n",
            "models.compressor.faults.leak.onset_per_hour: must be at least 0 (got -1)",
        ),
        (
            "models: {motor: {faults: {overload: {progression: sudden}}}}\n",
            "models.motor.faults.overload.progression: must be one of 'step', 'linear' or "
            "'exponential' (got 'sudden')",
        ),
        (
            "models: {hvac: {channels: {cop: {formula: 'cooling_load_kw / copp'}}}}\n",
            "models.hvac.channels.cop.formula: formula 'cooling_load_kw / copp' reads 'copp', "
            "which is neither a channel nor a variable",
        ),
        (
            "models: {hvac: {channels: {cop: {formula: '__import__(\"os\")'}}}}\n",
            "models.hvac.channels.cop.formula: formula '__import__(\"os\")' calls '__import__'; "
            "the functions are abs, clip, exp, log, max, min, sin, sqrt, where",
        ),
        (
            "models: {motor: {faults: {belt_slip: {effects: {speed: {mode: add, to: 1}}}}}}\n",
            "models.motor.faults.belt_slip.effects.speed: unknown channel (the channels are",
        ),
        (
            "models: {motor: {channels: {power_kw: {target: {runing: 3}}}}}\n",
            "models.motor.channels.power_kw.target.runing: unknown state",
        ),
        (
            "models: {motor: {operation: {states: {running: {share: 0.5}}}}}\n",
            "models.motor.operation.states: the shares must add up to 1 (they add up to 0.62)",
        ),
        (
            "models: {fan: {channels: {power_kw: {formula: 'energy_kwh'}}}}\n",
            "models.fan.channels.power_kw.formula: formulas refer to each other in a loop: "
            "power_kw → energy_kwh → power_kw",
        ),
        (
            "models: {motor: {operation: {cycle: {phases: [{state: a, seconds: [1, 2]}]}}}}\n",
            "models.motor.operation: give exactly one of states (dwell-time machine), cycle "
            "(phases) or demand (load/unload) (got states, cycle)",
        ),
        (
            "models: {fan: {faults: {chatter: {effects: {fan_on: {mode: add, to: 1}}}}}}\n",
            "models.fan.faults.chatter.effects.fan_on.mode: a digital channel takes flip, "
            "stuck or dropout",
        ),
        (
            "models: {fan: {faults: {stall: {effects: {rpm: {mode: flip}}}}}}\n",
            "models.fan.faults.stall.effects.rpm.mode: flip applies to digital channels only",
        ),
        (
            'models: {fan: {operation: {states: {"on": {mean_dwell_seconds: 0.5}}}}}\n',
            "models.fan.operation.states.on.mean_dwell_seconds: must be at least 1 (got 0.5)",
        ),
        (
            "models: {motor: {channels: {oee: {formula: 'duty * 2'}}}}\n",
            "models.motor.channels.oee.formula: formula 'duty * 2' reads 'duty': a load/unload "
            "(demand) model's variable",
        ),
        (
            "models: {fan: {channels: {rpm: {noise: {spinning: 3}}}}}\n",
            "models.fan.channels.rpm.noise.spinning: unknown state",
        ),
        (
            "models: {compressor: {interval_seconds: true}}\n",
            "models.compressor.interval_seconds: expected a number, not true or false",
        ),
        (
            "models: {pump: {channels: {p: {kind: analog, target: 1}}}}\n",
            "models.pump.operation: is required",
        ),
    ],
)
def test_a_bad_catalogue_file_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Each mistake is one line: the user's file, the key path, what was expected."""
    line = problem(tmp_path, text)
    assert line.startswith(f"{tmp_path / 'plant.yaml'}: {expected}"), line


def test_problem_is_reported_against_the_file_that_wrote_the_key(tmp_path: Path) -> None:
    """With two user files, the error names the one holding the offending key."""
    good = tmp_path / "good.yaml"
    good.write_text("models: {fan: {interval_seconds: 2}}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: {motor: {failure_threshold: 2}}\n")
    with pytest.raises(InputError) as caught:
        load_catalogue([good, bad])
    assert caught.value.problems == [
        f"{bad}: models.motor.failure_threshold: must be less than 1 (got 2)"
    ]


def test_missing_and_unreadable_files_are_one_line(tmp_path: Path) -> None:
    """A missing file or invalid YAML is reported like any config file."""
    with pytest.raises(InputError) as caught:
        load_catalogue([tmp_path / "nope.yaml"])
    assert caught.value.problems == [
        f"{tmp_path / 'nope.yaml'}: (file): equipment catalogue file not found"
    ]
    assert "invalid YAML" in problem(tmp_path, "models: [\n")


def test_unknown_type_names_the_types_that_exist() -> None:
    """Asking for a type the catalogue lacks lists the ones it has."""
    with pytest.raises(InputError) as caught:
        load_catalogue().get("boiler", where="node.yaml: type")
    assert caught.value.problems == [
        "node.yaml: type: unknown equipment type 'boiler' "
        f"(the catalogue has: {', '.join(BUILT_IN_MODELS)})"
    ]


def test_formulas_compute_with_numpy_and_refuse_attributes() -> None:
    """A formula evaluates element-wise; attribute access is refused at parse time."""
    formula = parse_formula("where(x > 1, clip(x * 2, 0, 5), -x) + max(x, 0) ** 2", frozenset("x"))
    values = formula.evaluate({"x": np.array([0.5, 2.0, 4.0])})
    assert np.allclose(values, [-0.5 + 0.25, 4.0 + 4.0, 5.0 + 16.0])
    assert formula.names == {"x"}
    with pytest.raises(ValueError, match="is not allowed"):
        parse_formula("x.real", frozenset("x"))
    assert math.isclose(float(parse_formula("exp(0) + sqrt(4)", frozenset()).evaluate({})), 3.0)
    wave = parse_formula("sin(2 * 3.141592653589793 * x)", frozenset("x"))
    assert np.allclose(wave.evaluate({"x": np.array([0.0, 0.25, 0.75])}), [0.0, 1.0, -1.0])
