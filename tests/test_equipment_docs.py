"""docs/equipment.md: every catalogue key is documented and every example runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from sensorfleet.equipment import EquipmentSimulator, build_catalogue, schema

DOC = Path(__file__).resolve().parents[1] / "docs" / "equipment.md"
TEXT = DOC.read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL)


def keys_of(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    if model in seen:
        return set()
    seen.add(model)
    found = set(model.model_fields)
    for field in model.model_fields.values():
        for candidate in _models_in(field.annotation):
            found |= keys_of(candidate, seen)
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in getattr(annotation, "__args__", ()) or ():
        found += _models_in(arg)
    return found


def test_every_catalogue_key_is_documented() -> None:
    """Each key the schema accepts appears in docs/equipment.md as `key`."""
    keys = keys_of(schema.CatalogueFile, set())
    missing = sorted(key for key in keys if f"`{key}`" not in TEXT)
    assert not missing, f"undocumented keys: {missing}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_every_example_loads_and_runs(example: str) -> None:
    """Each YAML example merges over the built-in catalogue and simulates a day."""
    catalogue = build_catalogue([("example.yaml", example)])
    for name in catalogue.names():
        model = catalogue.get(name)
        sim = EquipmentSimulator(
            model, np.random.SeedSequence(1), 1.8e9, model.interval_seconds, 20.0
        )
        block = sim.generate(round(86_400 / model.interval_seconds))
        assert len(block) and set(block.channels) == {c.name for c in model.channels}


def test_examples_cover_all_three_ways_of_running() -> None:
    """The examples show a dwell-time machine and a phased cycle (the compressor shows demand)."""
    assert len(EXAMPLES) >= 3
    assert any("cycle:" in example for example in EXAMPLES)
    assert any("states:" in example for example in EXAMPLES)
