"""Confidence intervals for shares of readings that come in episodes.

Anomalies arrive in episodes: a 300-reading trend is 300 flagged rows but one
random event. Treating rows as independent coin flips would give intervals
far too narrow, and a correct configuration would be flagged as wrong. So
every interval here is a Wilson score interval on an *effective* sample
size that accounts for the episodes.

Anomaly rate. The stream is a renewal process: an idle gap ``G`` (geometric),
then an episode of ``L`` flagged readings. For the share ``p`` of flagged
readings over ``N`` readings the delta method gives a variance
``p (1 - p) / N`` times a design effect ``deff ≈ (1 - p) · E[L²] / E[L]``,
with the moments taken over episodes. From data, ``E[L²] / E[L]`` is
``Σ_t rows_t² / episodes_t / flagged`` (episode length per type is fixed).

Type share. The share ``q`` of flagged rows that are of type ``t`` is a ratio
over episodes: ``Var(q) ≈ Σ_u (rows_u² / episodes_u) (1[u = t] - q)² / F²``
with ``F`` flagged rows, and the effective size is ``q (1 - q) / Var(q)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (0.99 → 2.576)."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(proportion: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval for an observed proportion over ``n`` (maybe effective) trials."""
    if n <= 0:
        return 0.0, 1.0
    p = min(1.0, max(0.0, proportion))
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def length_ratio(by_type: Mapping[str, tuple[int, int]]) -> float | None:
    """``E[L²] / E[L]`` over episodes, from ``{type: (rows, episodes)}``; None without episodes."""
    flagged = sum(rows for rows, _ in by_type.values())
    if flagged <= 0:
        return None
    squares = sum(rows * rows / max(1, episodes) for rows, episodes in by_type.values() if rows)
    return squares / flagged


def rate_effective_n(
    rows: int,
    flagged: int,
    by_type: Mapping[str, tuple[int, int]],
    configured_ratio: float | None,
) -> float:
    """Effective number of independent readings behind an observed anomaly rate.

    The design effect uses the larger of the measured and the configured
    ``E[L²] / E[L]``: a sample that by chance caught few long episodes has a
    low rate *and* a low measured ratio, and would otherwise get a falsely
    narrow interval just when it is furthest off.
    """
    if rows <= 0:
        return 0.0
    candidates = [r for r in (length_ratio(by_type), configured_ratio) if r is not None]
    ratio = max(candidates) if candidates else 1.0
    p = flagged / rows
    design_effect = max(1.0, (1 - p) * ratio)
    return rows / design_effect


def share_effective_n(kind: str, by_type: Mapping[str, tuple[int, int]]) -> float:
    """Effective number of independent observations behind the share of type ``kind``.

    Meaningful for shares strictly between 0 and 1 (see ``share_interval``);
    at the edges it falls back to the number of episodes.
    """
    flagged = sum(rows for rows, _ in by_type.values())
    episodes = sum(max(1, e) for rows, e in by_type.values() if rows)
    if flagged <= 0:
        return 0.0
    share = by_type.get(kind, (0, 0))[0] / flagged
    if share <= 0 or share >= 1:
        return float(episodes)
    variance = 0.0
    for name, (rows, count) in by_type.items():
        if rows:
            indicator = 1.0 if name == kind else 0.0
            variance += rows * rows / max(1, count) * (indicator - share) ** 2
    variance /= flagged * flagged
    if variance <= 0:
        return float(episodes)
    return share * (1 - share) / variance


def configured_share_n(
    kind: str,
    episodes: int,
    lengths: Mapping[str, float],
    episode_shares: Mapping[str, float],
) -> float | None:
    """Effective size behind the share of ``kind`` over ``episodes`` episodes, per the config.

    The same delta-method variance as ``share_effective_n``, with the
    configured episode shares and lengths in place of the observed ones.
    """
    weights = {t: p * lengths.get(t, 1.0) for t, p in episode_shares.items() if p > 0}
    mean = sum(weights.values())
    if kind not in weights or mean <= 0 or episodes <= 0:
        return None
    share = weights[kind] / mean
    if not 0 < share < 1:
        return None
    variance = sum(
        p * lengths.get(t, 1.0) ** 2 * ((1.0 if t == kind else 0.0) - share) ** 2
        for t, p in episode_shares.items()
        if p > 0
    ) / (mean * mean)
    return episodes * share * (1 - share) / variance if variance > 0 else None


def _other_length(
    kind: str, lengths: Mapping[str, float], episode_shares: Mapping[str, float]
) -> float | None:
    """Configured mean episode length of the types other than ``kind``."""
    others = {t: p for t, p in episode_shares.items() if t != kind and p > 0}
    if not others:
        return None
    return sum(p * lengths.get(t, 1.0) for t, p in others.items()) / sum(others.values())


def _row_share(episode_share: float, length: float, other_length: float) -> float:
    """Row share of a type with episode share ``episode_share`` among episodes of other lengths."""
    own = episode_share * length
    rest = (1 - episode_share) * other_length
    return own / (own + rest) if own + rest > 0 else 0.0


def share_interval(
    kind: str,
    by_type: Mapping[str, tuple[int, int]],
    z: float,
    lengths: Mapping[str, float],
    episode_shares: Mapping[str, float],
) -> tuple[float, float]:
    """Interval for the share of flagged rows that are of type ``kind``.

    Inside (0, 1) the delta method applies (``share_effective_n``, or the
    configured ``configured_share_n`` when that is smaller), widened where
    a Wilson interval on the type's episode count reaches further. At the
    edges it has nothing to say: a type never seen in ``K`` episodes still
    may have an episode share up to the Wilson bound for 0 of ``K``, and that
    bound is turned into a row share with the type's configured episode
    length (``lengths``) against the observed mean length of the others. The
    case of only one type seen is the mirror image (``episode_shares`` gives
    the configured mean length of the other types).
    """
    flagged = sum(rows for rows, _ in by_type.values())
    if flagged <= 0:
        return 0.0, 1.0
    episodes = sum(max(1, e) for rows, e in by_type.values() if rows)
    share = by_type.get(kind, (0, 0))[0] / flagged
    observed_length = flagged / episodes
    if 0 < share < 1:
        n = share_effective_n(kind, by_type)
        configured = configured_share_n(kind, episodes, lengths, episode_shares)
        # As for rates: the smaller effective size of the two, so that a sample
        # whose type mix happens to look tight does not get a falsely narrow interval.
        low, high = wilson(share, min(n, configured) if configured else n, z)
        # The delta method is symmetric; with few episodes of a type the count
        # is skewed. Wilson on the episode count gets the skew right; mapped
        # to rows with the configured lengths, the interval then holds the
        # expected share whenever the count alone is consistent with the
        # config. Take the wider of the two.
        rows, count = by_type[kind]
        own_length = lengths.get(kind, rows / max(1, count))
        others = _other_length(kind, lengths, episode_shares)
        if others is None:
            others = (flagged - rows) / max(1, episodes - max(1, count))
        count_low, count_high = wilson(max(1, count) / episodes, episodes, z)
        return (
            min(low, _row_share(count_low, own_length, others)),
            max(high, _row_share(count_high, own_length, others)),
        )
    if share <= 0:
        _, high = wilson(0.0, episodes, z)
        return 0.0, _row_share(high, lengths.get(kind, observed_length), observed_length)
    other_length = _other_length(kind, lengths, episode_shares)
    if other_length is None:
        return 1.0, 1.0
    low, _ = wilson(1.0, episodes, z)
    return _row_share(low, observed_length, other_length), 1.0
