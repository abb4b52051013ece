"""Equipment identities at the command line: the catalogue listing and the type checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import BUILT_IN_MODELS, clean_env, run_main, write_config, write_identity


def sensorfleet(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sensorfleet ARGS`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "sensorfleet", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_models_lists_the_catalogue_one_model_a_line(tmp_path: Path) -> None:
    """`sensorfleet models` prints one line per built-in model, its name first, then its
    interval and channels with units."""
    result = sensorfleet(["models"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list(BUILT_IN_MODELS)
    compressor = lines[0]
    assert "every 1 s" in compressor
    assert "power_kw (kW)" in compressor


def test_models_merges_the_catalogue_files_of_the_config(tmp_path: Path) -> None:
    """A catalogue file named in config.yaml (relative to it) is merged over the built-in
    one: its description replaces the fan's, everything else stays."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "plant.yaml").write_text(
        "models:\n  fan:\n    description: Roof extract fan, hall 3\n"
    )
    write_config(tmp_path / "conf" / "config.yaml", equipment={"catalogues": ["plant.yaml"]})
    result = sensorfleet(["models", "--config", "conf/config.yaml"], tmp_path)
    assert result.returncode == 0, result.stderr
    fan = next(line for line in result.stdout.splitlines() if line.startswith("fan "))
    assert fan.endswith("Roof extract fan, hall 3")
    assert "rpm (rpm)" in fan


def test_bad_catalogue_file_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    """A catalogue file with an unknown key stops `models` and `run` with exit 2 and one
    line naming the file and the key."""
    (tmp_path / "plant.yaml").write_text("models:\n  fan:\n    intervall_seconds: 2\n")
    write_config(tmp_path / "config.yaml", equipment={"catalogues": ["plant.yaml"]})
    write_identity(tmp_path / "id.json")
    for result in (
        sensorfleet(["models", "--config", "config.yaml"], tmp_path),
        run_main(
            ["--config", "config.yaml", "--identity", "id.json", "--backfill", "1m"], tmp_path
        ),
    ):
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        first = result.stderr.splitlines()[0]
        assert first.startswith(f"error: {tmp_path / 'plant.yaml'}: models.fan.intervall_seconds")


def test_unknown_type_exits_2_naming_the_known_types(tmp_path: Path) -> None:
    """An identity whose type is not a known model is exit 2, one line naming the file and
    every type that exists, and no database is created."""
    write_config(tmp_path / "config.yaml")
    write_identity(tmp_path / "id.json", type="compresor")
    result = run_main(
        ["--config", "config.yaml", "--identity", "id.json", "--backfill", "1m"], tmp_path
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: id.json: type: unknown sensor type 'compresor' (known types: "
        f"temperature_vibration, {', '.join(BUILT_IN_MODELS)})\n"
    )
    assert not (tmp_path / "data").exists()


def test_models_prints_each_register_map(tmp_path: Path) -> None:
    """`sensorfleet models --registers` prints the Modbus map a unit of each model serves:
    channels as float32 from address 0, then the labels."""
    result = sensorfleet(["models", "--registers"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("compressor (Modbus unit registers):")
    assert lines[start + 1].split() == ["0", "float32", "pressure_bar", "bar"]
    state = next(line for line in lines[start:] if " state " in line).split()
    assert state[:3] == ["24", "uint16", "state"] and state[3:5] == ["0", "loaded,"]


def test_models_show_prints_one_model_with_its_sources(tmp_path: Path) -> None:
    """`sensorfleet models show NAME` prints the model's states, channels, failure modes
    with their courses and effects, and the sources of its figures."""
    result = sensorfleet(["models", "show", "motor"], tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("motor: Conveyor line")
    assert "  running: 88% of the time, 2 h a visit\n" in text
    assert "  vibration_mm_s (analog mm/s [0, 50])" in text
    assert (
        "  bearing_wear: exponential over 7-21 d, 5e-05 per operating hour: "
        "vibration_mm_s ×3.55, bearing_temp_c +25 (lag 2 h)."
    ) in text
    assert "  speed_dropout: speed_rpm dropout" in text
    sources = text.split("\nsources:\n", 1)[1]
    assert "ISO 10816-3:2009" in sources


def test_models_show_example_in_the_docs_is_the_real_output(tmp_path: Path) -> None:
    """The `models show lamp` excerpt in docs/equipment.md is what the command prints."""
    docs = (Path(__file__).resolve().parents[1] / "docs" / "equipment.md").read_text()
    excerpt = docs.split("$ sensorfleet models show lamp\n", 1)[1].split("…\n", 1)[0]
    result = sensorfleet(["models", "show", "lamp"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(excerpt)


def test_models_show_an_unknown_model_exits_2_naming_the_models(tmp_path: Path) -> None:
    """An unknown NAME is exit 2 with one line that lists the models there are."""
    result = sensorfleet(["models", "show", "motr"], tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: models show NAME: unknown equipment type 'motr' "
        f"(the catalogue has: {', '.join(BUILT_IN_MODELS)})\n"
    )


def test_every_built_in_model_cites_its_sources(tmp_path: Path) -> None:
    """Each built-in model shows at least two sources behind its figures."""
    for name in BUILT_IN_MODELS:
        result = sensorfleet(["models", "show", name], tmp_path)
        assert result.returncode == 0, result.stderr
        sources = result.stdout.split("\nsources:\n", 1)[1].splitlines()
        assert len(sources) >= 2 and "none given" not in sources[0], name


def test_models_show_writes_courses_in_readable_units(tmp_path: Path) -> None:
    """A course from minutes to weeks reads `5 min-14 d`, not thousands of minutes."""
    result = sensorfleet(["models", "show", "production_machine"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "  hydraulic_pressure_loss: linear over 5 min-14 d," in result.stdout
    assert "  motor_overheating: linear over 30-240 min," in result.stdout
