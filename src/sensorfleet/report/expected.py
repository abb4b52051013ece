"""What the configuration says the data should look like.

For one identity (firmware, model, manufacturer, location) the node's own
calibration (``anomalies.calibrate``) gives the long-run share of flagged
readings and the share of flagged readings of each type. A group in a
report (say firmware 1.3) usually holds several identities, so its expected
values are those of each identity present, weighted by how many rows that
identity has in the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..node.anomalies import calibrate
from ..node.config import Config
from ..node.profiles import behaviour_of
from .aggregate import IdentityFields


@dataclass(frozen=True)
class Expectation:
    """Expected anomaly behaviour of some rows."""

    flag_rate: float  # share of rows flagged
    row_shares: dict[str, float]  # share of flagged rows by type
    length_ratio: float | None  # E[L²] / E[L] over episodes (for the design effect)
    episode_shares: dict[str, float]  # share of episodes by type
    lengths: dict[str, float]  # readings per episode by type

    @property
    def mean_length(self) -> float:
        return sum(p * self.lengths.get(t, 1.0) for t, p in self.episode_shares.items())


def expect_identity(
    config: Config, identity: IdentityFields, readings_per_second: float
) -> Expectation:
    """Expected flag rate and type shares for rows written by one identity under ``config``."""
    return _expect(config, identity, readings_per_second)[0]


def _expect(
    config: Config, identity: IdentityFields, readings_per_second: float
) -> tuple[Expectation, tuple[str, ...]]:
    behaviour = behaviour_of(config.profiles, identity)
    mix = calibrate(config.anomalies, behaviour, readings_per_second)
    rate = mix.flag_rate
    shares = mix.row_shares()
    episode_shares = dict(mix.type_probabilities)
    if config.anomalies.types.missing_data.record == "skip" and "missing_data" in shares:
        # Outage readings are never written, so they are absent from both the
        # flagged rows and the total.
        missing = rate * shares.pop("missing_data")
        episode_shares.pop("missing_data", None)
        rate = (rate - missing) / (1 - missing) if missing < 1 else 0.0
        remaining = sum(shares.values())
        shares = {t: s / remaining for t, s in shares.items()} if remaining > 0 else {}
    total = sum(episode_shares.values())
    episode_shares = {t: p / total for t, p in episode_shares.items()} if total > 0 else {}
    mean = sum(p * mix.lengths[t] for t, p in episode_shares.items())
    squares = sum(p * mix.lengths[t] ** 2 for t, p in episode_shares.items())
    lengths = {t: float(n) for t, n in mix.lengths.items()}
    expectation = Expectation(
        rate, shares, squares / mean if mean > 0 else None, episode_shares, lengths
    )
    return expectation, behaviour.unknown


class Expectations:
    """Expected values under one config, computed once per identity."""

    def __init__(self, config: Config, readings_per_second: float | None = None) -> None:
        self.config = config
        self.readings_per_second = readings_per_second or config.simulation.readings_per_second
        self._cache: dict[IdentityFields, Expectation] = {}
        self.unknown: set[str] = set()  # names in the data that no profile describes

    def identity(self, identity: IdentityFields) -> Expectation:
        """Expected values for one identity."""
        found = self._cache.get(identity)
        if found is None:
            found, unknown = _expect(self.config, identity, self.readings_per_second)
            self.unknown.update(unknown)
            self._cache[identity] = found
        return found

    def combine(self, weighted: Iterable[tuple[IdentityFields, int]]) -> Expectation | None:
        """Expected values for a group: identities weighted by their row counts."""
        rows_total = 0
        flagged_total = 0.0
        ratio_weight = 0.0
        ratio_sum = 0.0
        shares: dict[str, float] = {}
        episodes_total = 0.0
        episode_shares: dict[str, float] = {}
        lengths: dict[str, float] = {}
        for identity, rows in weighted:
            if rows <= 0:
                continue
            expectation = self.identity(identity)
            rows_total += rows
            flagged = rows * expectation.flag_rate
            flagged_total += flagged
            for kind, share in expectation.row_shares.items():
                shares[kind] = shares.get(kind, 0.0) + flagged * share
            if expectation.length_ratio is not None:
                ratio_sum += flagged * expectation.length_ratio
                ratio_weight += flagged
            if expectation.mean_length > 0:
                episodes = flagged / expectation.mean_length
                episodes_total += episodes
                for kind, share in expectation.episode_shares.items():
                    episode_shares[kind] = episode_shares.get(kind, 0.0) + episodes * share
            # Lengths depend only on the config and the reading rate, not the identity.
            lengths.update(expectation.lengths)
        if rows_total == 0:
            return None
        if flagged_total > 0:
            shares = {kind: value / flagged_total for kind, value in shares.items()}
        if episodes_total > 0:
            episode_shares = {k: v / episodes_total for k, v in episode_shares.items()}
        return Expectation(
            flag_rate=flagged_total / rows_total,
            row_shares=shares,
            length_ratio=ratio_sum / ratio_weight if ratio_weight > 0 else None,
            episode_shares=episode_shares,
            lengths=lengths,
        )
