"""The in-flight limit of node pods: grows while the API server answers fast, halves when it pushes back."""

from __future__ import annotations

import pytest

from multus_cleanup.cluster import pacing
from multus_cleanup.cluster.pacing import InFlightLimit


def test_grows_by_one_per_fast_answer_up_to_the_maximum() -> None:
    limit = InFlightLimit(60, start=50)
    for _ in range(20):
        limit.observe(0.05, throttled=False)
    assert limit.value == 60 and limit.highest == 60


def test_a_429_or_a_slow_answer_halves_it_once_per_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: now[0])
    limit = InFlightLimit(500, start=400, slow_seconds=1.0)
    limit.observe(0.1, throttled=True)
    assert limit.value == 200
    limit.observe(2.5, throttled=False)  # the same slow moment, seen by another create: not counted twice
    assert limit.value == 200
    now[0] += 1.5
    limit.observe(2.5, throttled=False)
    assert limit.value == 100 and limit.decreases == 2


def test_never_below_the_floor_nor_above_a_small_maximum() -> None:
    limit = InFlightLimit(5, start=50, floor=10)
    assert limit.value == 5  # the user's concurrency is a ceiling, from the first pod
    limit.observe(0.01, throttled=False)
    assert limit.value == 5
    low = InFlightLimit(500, start=12, floor=10)
    low.observe(9.0, throttled=False)
    assert low.value == 10
