"""Every built-in model's rows, pinned bit for bit for a fixed seed.

Each case produces a machine's rows as the node's backfill builds them (the model's
``<type>_readings`` columns, labels inline, in blocks of the default batch size) and
hashes every value of every row. Once at the identity's own fault rate, once at a rate
high enough that faults, trips, maintenance and instrument faults happen many times.
Any change to how a model's readings are simulated or turned into rows changes a
digest, so a speed-up of the engine or of the row building cannot alter them unnoticed.
A digest that must change on purpose is not a refactor: say why in the changelog.
"""

from __future__ import annotations

import dataclasses
import hashlib
from functools import cache

import pytest
from conftest import BUILT_IN_MODELS

from sensorfleet.equipment import Catalogue, load_catalogue
from sensorfleet.node.config import build_config
from sensorfleet.node.identity import DEFAULT_IDENTITY, build_identity
from sensorfleet.node.machine import EquipmentGenerator, MachineSettings

SEED = 20261205
START = 1_764_547_200.0  # 2025-12-01T00:00:00Z, a Monday
BLOCK = 5_000  # the default batch size: what one backfill step generates
READINGS = 20_000
HIGH_RATE = 300.0  # fault onsets 300 times the model's own rates

# sha256 of every row's repr (see ``rows_digest``): (own rate, high rate) per model.
GOLDEN: dict[str, tuple[str, str]] = {
    "compressor": (
        "43270334ee61b24d90bc6eb6e333ab2c68746d92678478e0aaee26465c02dc7c",
        "1959bb2f8e7250546428d60ad327db7498033591f32e8bc52cb32ae1a6de05ac",
    ),
    "fan": (
        "a443f5914bfdbfe86fc93dcf70217204b4ce88596b27ada216d61501e9c997dc",
        "63b97cf4422b06297ebae1f792083c5be54448ef17374abf2bfaa8539ef5e3db",
    ),
    "heater": (
        "0a8893d7965bca4444e5644fcc14dd95406caf38e65da256f27a4adb66497fe1",
        "3856d6f4e6795bfca4b6c95631c458461e02957fc584013d3604e466bb4400e1",
    ),
    "hvac": (
        "82ebda87ab2fea31b8b327713c1e473f7b76b37552288af24453560cd36d83a4",
        "f12c422b05e041bc7d4568bda1e39b55dab3b5242dbb5741cfb8a2103d355dfc",
    ),
    "hydraulic_pump": (
        "6e38102fe88d7b60c44e2cacd17d71fbf2870bb60a634e01f2d434bfe73fbd07",
        "b7e725f751f13329db23d15c1435ecb01e5f60b780f9a9a6613e8ab31e8d7864",
    ),
    "injection_molding": (
        "a97c3675b8328392ecb16b5191d7b74e00c8d89370e54a21fbfc5d5c86fa230a",
        "27cd4f8d8957b41ea7b3fc38bcb19b66e8a564ad4d9d87a4333c9a341f5b9250",
    ),
    "lamp": (
        "a5af42d962d232941591049a00e53497571e375697c90a787372315731e4ca94",
        "2171a1bed7134ea225adda31f72175af72445d1962de7eafc483d22945a8fdc4",
    ),
    "motor": (
        "436ae2aedbd5fa5707e52ea8a97c35751b284832ff69b6eb4dd0d02eee13067e",
        "3fdfde39e20519c9f2af34de5a0d9ea8874258e71eb9f25e940c092eeea22479",
    ),
    "oven": (
        "799bbb5fd662360523630663f33ce92540af3753422f7af3bb819bfee274b8e9",
        "d00a8f299663372b1c839322da974a659359ddf523ebaa378ea8a4d3c6fbd622",
    ),
    "pm_sensor": (
        "32b512514491a1107a6cafa87221d7c667c585e47faf094d2a4042dc18372006",
        "575f623f8fc440e90f4b439a4a506d871227d0e8246ed123dbd6155a7e79f103",
    ),
    "process_machine": (
        "e4d6846784d377ba53d6b4ca9d6090abcf25614ddf82f2f8d44189196b649709",
        "fe289a364ffef3e879b91e8af8063a5f12af265c12a816ef96efca2505b6953b",
    ),
    "production_machine": (
        "17c49af96a29d2b86595e4b4d414412369164b0cb2013fdd54cc8dc2ce2b57de",
        "e461c6bfd05bf18e16ff8d8e723543c5bbe2547da591153230f8ffcce51d77ad",
    ),
}


@cache
def catalogue() -> Catalogue:
    return load_catalogue()


def rows_digest(name: str, rate_multiplier: float) -> str:
    """sha256 over ``READINGS`` rows of a machine of model ``name``, in backfill blocks."""
    config = build_config({}, "test")
    identity = build_identity(
        {**DEFAULT_IDENTITY, "id": f"{name}-golden", "type": name}, "test", {}
    )
    settings = MachineSettings.resolve(config, identity, catalogue())
    behaviour = dataclasses.replace(settings.behaviour, probability_multiplier=rate_multiplier)
    generator = EquipmentGenerator(dataclasses.replace(settings, behaviour=behaviour), SEED, START)
    digest = hashlib.sha256()
    for _ in range(READINGS // BLOCK):
        # repr() of a float is exact, so the digest sees every bit of every value.
        for row in generator.generate(BLOCK).iter_rows():
            digest.update(repr(row).encode())
            digest.update(b"\n")
    return digest.hexdigest()


@pytest.mark.parametrize("name", BUILT_IN_MODELS)
def test_model_rows_match_the_golden_digest(name: str) -> None:
    """A model's rows at its own fault rate and at a high one hash to the pinned values."""
    own, high = GOLDEN[name]
    assert rows_digest(name, 1.0) == own
    assert rows_digest(name, HIGH_RATE) == high
