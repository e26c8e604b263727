"""Due times: grid offsets per (connection, entity), spacing, and the bounds of the jitter."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from interlink.sync.scheduler import latest_next_due, max_random_jitter, next_due, phase_offset
from tests.scheduler.conftest import T0

INTERVALS = [
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(days=1),
    timedelta(days=7),
]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NoJitter(random.Random):
    """A random source whose random part is always zero, so due times land on the grid."""

    def random(self) -> float:
        return 0.0


def grid_point(key: str, interval: timedelta, due: datetime) -> datetime:
    """Return the grid point of ``key`` at or before ``due``."""
    return due - (due - EPOCH - phase_offset(key, interval)) % interval


def test_phase_offset_is_stable() -> None:
    assert phase_offset("con_a/vendor", timedelta(hours=1)) == phase_offset(
        "con_a/vendor", timedelta(hours=1)
    )


@pytest.mark.parametrize("interval", INTERVALS)
def test_phase_offset_within_interval(interval: timedelta) -> None:
    for number in range(500):
        offset = phase_offset(f"con_{number}/vendor", interval)
        assert timedelta(0) <= offset < interval


def test_phase_offsets_spread_over_interval() -> None:
    interval = timedelta(minutes=15)
    minutes = [
        phase_offset(f"con_{number}/vendor", interval) // timedelta(minutes=1) for number in range(1500)
    ]
    per_minute = [minutes.count(minute) for minute in range(15)]
    assert min(per_minute) > 50  # 100 each on average: no minute is left out or crowded
    assert max(per_minute) < 150


@pytest.mark.parametrize("interval", INTERVALS)
def test_next_due_without_jitter_lies_on_grid(interval: timedelta) -> None:
    due = next_due("con_c/vendor", interval, after=T0, rng=NoJitter())
    assert (due - EPOCH) % interval == phase_offset("con_c/vendor", interval)


@pytest.mark.parametrize("interval", INTERVALS)
def test_random_jitter_bounds(interval: timedelta) -> None:
    bound = max_random_jitter(interval)
    assert bound <= interval * 0.05
    assert bound <= timedelta(minutes=5)
    on_grid = next_due("con_a/vendor", interval, after=T0, rng=NoJitter())
    samples = [next_due("con_a/vendor", interval, after=T0, rng=random.Random(seed)) for seed in range(300)]
    for due in samples:
        assert on_grid <= due < on_grid + bound
    assert max(samples) - min(samples) > bound / 2  # the random part is used, not always zero


@pytest.mark.parametrize("interval", INTERVALS)
def test_next_due_at_least_half_interval_ahead(interval: timedelta) -> None:
    rng = random.Random(1)
    for minutes in range(0, 24 * 60, 37):
        after = T0 + timedelta(minutes=minutes)
        due = next_due("con_b/part", interval, after=after, rng=rng)
        assert due >= after + interval / 2
        assert due < latest_next_due(interval, after=after)


@pytest.mark.parametrize("interval", INTERVALS)
def test_steady_spacing_equals_interval(interval: timedelta) -> None:
    rng = random.Random(2)
    due = next_due("con_d/vendor", interval, after=T0, rng=rng)
    points = [grid_point("con_d/vendor", interval, due)]
    for _ in range(20):
        claimed_at = due + timedelta(seconds=10)  # one scheduler tick late
        due = next_due("con_d/vendor", interval, after=claimed_at, rng=rng)
        points.append(grid_point("con_d/vendor", interval, due))
    gaps = {later - earlier for earlier, later in itertools.pairwise(points)}
    assert gaps == {interval}


def test_downtime_leads_to_one_due_time() -> None:
    interval = timedelta(minutes=15)
    back_at = T0 + timedelta(days=1)
    due = next_due("con_e/vendor", interval, after=back_at, rng=random.Random(3))
    assert due >= back_at + interval / 2
    assert due < back_at + interval * 1.5 + max_random_jitter(interval)
