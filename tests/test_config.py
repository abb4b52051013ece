"""Config and identity validation: clear one-line errors, precedence of sources."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_config

from sensorfleet.errors import InputError
from sensorfleet.node.config import Override, build_config, environment_overrides, load_config
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity, load_identity


def problems(raw: dict[str, object]) -> list[str]:
    with pytest.raises(InputError) as caught:
        build_config(raw, "config.yaml")
    return caught.value.problems


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"anomalies": {"probability": 1.5}},
            "config.yaml: anomalies.probability: must be between 0 and 1 (got 1.5)",
        ),
        (
            {"anomalies": {"probability": -0.1}},
            "config.yaml: anomalies.probability: must be between 0 and 1 (got -0.1)",
        ),
        (
            {"simulation": {"readings_per_second": 0}},
            "config.yaml: simulation.readings_per_second: must be greater than 0 (got 0)",
        ),
        (
            {"normal_parameters": {"vibration": {"mean": 2, "std_dev": -1, "min": 0, "max": 5}}},
            "config.yaml: normal_parameters.vibration.std_dev: must be at least 0 (got -1)",
        ),
        (
            {"normal_parameters": {"voltage": {"mean": 12, "std_dev": 1, "min": 13, "max": 11}}},
            "config.yaml: normal_parameters.voltage: "
            "min must not exceed max (got min=13.0, max=11.0)",
        ),
        (
            {"simulation": {"readings_per_second": float("nan")}},
            "config.yaml: simulation.readings_per_second: expected a finite number (got NaN)",
        ),
        ({"simulaton": {}}, "config.yaml: simulaton: unknown key (did you mean 'simulation'?)"),
        (
            {"anomalies": {"types": {"noise": {"wieght": 1}}}},
            "config.yaml: anomalies.types.noise.wieght: unknown key (did you mean 'weight'?)",
        ),
        (
            {"database": {"batch_size": "many"}},
            "config.yaml: database.batch_size: expected a whole number (got 'many')",
        ),
        (
            {"database": {"journal_mode": "memory"}},
            "config.yaml: database.journal_mode: must be one of 'wal', 'delete', 'truncate' or "
            "'persist' (got 'memory')",
        ),
    ],
)
def test_bad_values_give_one_line_naming_file_key_and_expectation(
    raw: dict[str, object], expected: str
) -> None:
    """Each invalid value is reported as `file: key.path: what was expected (got value)`."""
    assert problems(raw) == [expected]


def test_buffer_must_hold_at_least_one_batch() -> None:
    """An outage buffer smaller than a batch would drop rows on every catch-up."""
    assert problems({"database": {"batch_size": 1000, "max_buffered_rows": 10}}) == [
        "config.yaml: database: max_buffered_rows must be at least batch_size (got 10 < 1000)"
    ]


def test_every_problem_is_reported_at_once() -> None:
    """Several mistakes give several lines, not just the first."""
    found = problems({"anomalies": {"probability": 2}, "simulation": {"seed": "x"}})
    assert len(found) == 2


def test_defaults_match_the_original_documentation() -> None:
    """Without a file the documented defaults apply, profiles included."""
    config = load_config(None)
    assert config.simulation.readings_per_second == 1
    assert config.anomalies.probability == 0.05
    assert config.normal_parameters.temperature.mean == 65.0
    assert config.anomalies.types.pattern.duration_seconds == 600
    assert config.profiles.firmware["1.3"].probability_multiplier == 1.5
    assert config.profiles.manufacturers["VibrationPlus"].probability_multiplier == 1.2


def test_user_profiles_merge_over_builtins() -> None:
    """A user's firmware '1.5' is added, and a tweak of '1.3' keeps its other values."""
    config = build_config(
        {
            "profiles": {
                "firmware": {"1.5": {"probability_multiplier": 0.3}, "1.3": {"noise_factor": 0.2}}
            }
        },
        "c.yaml",
    )
    assert config.profiles.firmware["1.5"].probability_multiplier == 0.3
    assert config.profiles.firmware["1.3"].noise_factor == 0.2
    assert config.profiles.firmware["1.3"].probability_multiplier == 1.5
    assert "1.4" in config.profiles.firmware


def test_precedence_flag_over_environment_over_file(tmp_path: Path) -> None:
    """A flag beats the environment, which beats the file, which beats the default."""
    path = write_config(tmp_path / "c.yaml", simulation={"readings_per_second": 5, "seed": 1})
    env = environment_overrides({"READINGS_PER_SECOND": "7", "SIMULATION_SEED": "2"})
    config = load_config(str(path), [*env, Override("simulation.seed", 3, "--seed")])
    assert config.simulation.readings_per_second == 7
    assert config.simulation.seed == 3


def test_bad_environment_value_names_the_variable() -> None:
    """An invalid environment override is blamed on the variable, not the file."""
    with pytest.raises(InputError) as caught:
        build_config({}, "config.yaml", environment_overrides({"ANOMALY_PROBABILITY": "3"}))
    assert caught.value.problems == [
        "environment ANOMALY_PROBABILITY: anomalies.probability: must be between 0 and 1 (got 3)"
    ]


def test_relative_paths_are_read_against_the_config_folder(tmp_path: Path) -> None:
    """database.path and logging.file in the file are relative to the file's folder."""
    path = write_config(tmp_path / "c.yaml", database={"path": "data/x.db"})
    assert load_config(str(path)).database.path == str(tmp_path / "data" / "x.db")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "file is empty"),
        (b"simulation: [unclosed", "invalid YAML at line 1"),
        (b"\x00\x01\x02binary", "not a text file"),
        (b"\xff\xfe\xfa", "not UTF-8 text"),
        (b"- a list\n", "expected a YAML mapping"),
    ],
)
def test_unreadable_config_files_are_explained(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    """Empty, malformed, binary and non-mapping files each get a clear reason."""
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        load_config(str(path))
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{path}: ")
    assert expected in caught.value.problems[0]


def test_identity_requires_fields_and_rejects_typos() -> None:
    """A missing field and a misspelt one are both reported with the key."""
    with pytest.raises(InputError) as caught:
        build_identity(
            {
                "id": "A",
                "location": "L",
                "manufacturer": "M",
                "model": "X",
                "firmwre_version": "1.3",
            },
            "id.json",
            {},
        )
    assert "id.json: firmware_version: is required" in caught.value.problems
    assert (
        "id.json: firmwre_version: unknown key (did you mean 'firmware_version'?)"
        in caught.value.problems
    )


def test_identity_accepts_numeric_firmware_and_checks_timezone() -> None:
    """Firmware written as a JSON number becomes text; an unknown zone is rejected."""
    identity = build_identity({**DEFAULT_IDENTITY, "firmware_version": 1.4}, "id.json", {})
    assert identity.firmware_version == "1.4"
    with pytest.raises(InputError) as caught:
        build_identity({**DEFAULT_IDENTITY, "timezone": "Mars/Base"}, "id.json", {})
    assert "id.json: timezone: must be an IANA time zone" in caught.value.problems[0]


def test_environment_overrides_identity_fields(tmp_path: Path) -> None:
    """SENSOR_ID and SENSOR_LOCATION replace the file's values, as in `docker run -e`."""
    path = tmp_path / "id.json"
    path.write_text(
        '{"id": "A", "location": "L", "manufacturer": "M", "model": "X", "firmware_version": "1.3"}'
    )
    identity = load_identity(str(path), {"id": "CUSTOM001", "location": "Custom Location"})
    assert (identity.id, identity.location) == ("CUSTOM001", "Custom Location")


def test_problems_inside_lists_and_tables_name_the_entry() -> None:
    """A bad list item or profile entry is reported at its index or key, all at once."""
    assert problems(
        {
            "opcua": {"security_policies": ["None", "Bogus"]},
            "profiles": {"firmware": {"1.5": {"noise_factor": "loud"}}},
        }
    ) == [
        "config.yaml: opcua.security_policies[1]: must be one of 'None', "
        "'Basic256Sha256_Sign' or 'Basic256Sha256_SignAndEncrypt' (got 'Bogus')",
        "config.yaml: profiles.firmware.1.5.noise_factor: expected a number (got 'loud')",
    ]


def test_numbers_written_as_text_are_read_as_numbers() -> None:
    """YAML reads 1.0e3 (no sign in the exponent) as text; it still counts as a number."""
    config = build_config(
        {"simulation": {"readings_per_second": "1.0e3", "seed": 7.0}}, "config.yaml"
    )
    assert config.simulation.readings_per_second == 1000.0
    assert config.simulation.seed == 7 and isinstance(config.simulation.seed, int)
    assert problems({"simulation": {"seed": 7.5}}) == [
        "config.yaml: simulation.seed: expected a whole number (got 7.5)"
    ]


def test_secrets_are_kept_but_never_shown() -> None:
    """Token and password are usable, masked in repr, and a fingerprint in the config hash."""
    config = build_config(
        {
            "monitoring": {"token": "s3cret-token"},
            "opcua": {"username": "op", "password": 1234},
        },
        "config.yaml",
    )
    assert config.monitoring.token is not None
    assert config.monitoring.token.get_secret_value() == "s3cret-token"
    assert config.opcua.password is not None
    assert config.opcua.password.get_secret_value() == "1234"
    assert "s3cret-token" not in repr(config) and "1234" not in repr(config)
    other = build_config({"monitoring": {"token": "another-token"}}, "config.yaml")
    assert config.digest() != other.digest()


def test_identity_labels_are_trimmed_and_must_not_be_blank() -> None:
    """Surrounding spaces go; a label of spaces only is refused with its key."""
    identity = build_identity({**DEFAULT_IDENTITY, "location": "  Hall 3 "}, "id.json", {})
    assert identity.location == "Hall 3"
    with pytest.raises(InputError) as caught:
        build_identity({**DEFAULT_IDENTITY, "model": "   "}, "id.json", {})
    assert caught.value.problems == ["id.json: model: must have at least 1 character (got '')"]
