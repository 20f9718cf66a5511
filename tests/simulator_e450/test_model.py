"""Model invariants: energies only rise, tariffs follow the schedule, seeds reproduce, disturbances show."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.obis import CATALOGUE, ObisCode
from meterbridge.simulator.e450_model import (
    ENERGY_REGISTERS,
    Disturbance,
    E450Model,
    ModelConfig,
    TariffSchedule,
)

OB = ObisCode.parse
START = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)  # a Monday; Zurich is UTC+2


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.integers(1, 1800), min_size=1, max_size=10), seed=st.integers(0, 2**32))
def test_energies_never_fall(steps: list[int], seed: int) -> None:
    model = E450Model(seed=seed, start=START, config=ModelConfig(pv_peak_w=3000))
    last = model.snapshot()
    t = START
    for step in steps:
        t += timedelta(seconds=step)
        snap = model.snapshot(t)
        for code in ENERGY_REGISTERS:
            assert snap[code] >= last[code], code
        assert snap[OB("1-0:1.8.0")] >= snap[OB("1-0:1.8.1")]
        last = snap


def test_tariff_registers_follow_the_schedule() -> None:
    schedule = TariffSchedule()
    model = E450Model(seed=5, start=START, config=ModelConfig(tariffs=schedule))
    switch = schedule.next_switch(START)
    assert switch == datetime(2026, 5, 4, 4, 0, tzinfo=UTC)  # 06:00 Zurich summer time
    before = model.snapshot(switch - timedelta(minutes=1))
    assert before.tariff == 2
    night = model.snapshot(switch)
    assert night[OB("1-0:1.8.1")] == before[OB("1-0:1.8.1")]  # T1 did not move during the night
    assert night[OB("1-0:1.8.2")] > model.energies()[OB("1-0:1.8.2")] - 1 > 0
    day = model.snapshot(switch + timedelta(hours=3))
    assert day.tariff == 1 and day[OB("0-0:96.14.0")] == 1
    assert day[OB("1-0:1.8.2")] == night[OB("1-0:1.8.2")]  # T2 frozen during the day
    assert day[OB("1-0:1.8.1")] > night[OB("1-0:1.8.1")]
    exact = model.energies()
    assert exact[OB("1-0:1.8.1")] + exact[OB("1-0:1.8.2")] == pytest.approx(exact[OB("1-0:1.8.0")])
    saturday = datetime(2026, 5, 9, 10, tzinfo=UTC)
    assert schedule.tariff_at(saturday) == 2  # weekends are night tariff


def test_same_seed_same_values_whatever_the_steps() -> None:
    a = E450Model(seed=42, start=START, config=ModelConfig(pv_peak_w=2000))
    b = E450Model(seed=42, start=START, config=ModelConfig(pv_peak_w=2000))
    end = START + timedelta(hours=7, seconds=13)
    a.advance(end)
    t = START
    while t < end:
        t = min(end, t + timedelta(seconds=97))
        b.advance(t)
    for code, value in a.energies().items():
        assert b.energies()[code] == pytest.approx(value, abs=1e-6)
    assert a.snapshot().values == b.snapshot().values
    other = E450Model(seed=43, start=START, config=ModelConfig(pv_peak_w=2000))
    other.advance(end)
    assert other.snapshot().values != a.snapshot().values


def test_time_runs_forward_only() -> None:
    model = E450Model(seed=1, start=START)
    model.advance(START + timedelta(hours=1))
    with pytest.raises(ValueError, match="forward"):
        model.advance(START)


def test_every_catalogue_register_is_served_and_plausible() -> None:
    model = E450Model(seed=9, start=START, config=ModelConfig(pv_peak_w=4000))
    for hour in range(0, 24, 2):
        snap = model.snapshot(START + timedelta(hours=hour))
        for code, quantity in CATALOGUE.items():
            assert code in snap.values, code
            value = snap.values[code]
            low, high = quantity.plausible
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert low is None or value >= float(low), (code, value)
                assert high is None or value <= float(high), (code, value)


def test_pv_exports_at_noon_and_load_follows_the_day() -> None:
    model = E450Model(seed=2, start=START, config=ModelConfig(pv_peak_w=6000))
    noon = model.snapshot(START + timedelta(hours=11))  # 13:00 local
    assert noon[OB("1-0:2.7.0")] > 0 and noon[OB("1-0:1.7.0")] == 0
    assert noon[OB("1-0:2.8.0")] > 0
    night = model.snapshot(START + timedelta(hours=25))  # 03:00 local next day
    assert night[OB("1-0:2.7.0")] == 0 and night[OB("1-0:1.7.0")] > 0


@pytest.mark.parametrize(
    ("text", "code", "check"),
    [
        ("voltage_sag:600:120:0.3:1", "1-0:32.7.0", lambda v: v < 0.8 * 230),
        ("voltage_swell:600:120:0.15:2", "1-0:52.7.0", lambda v: v > 1.1 * 230),
        ("frequency:600:120:-1.2", "1-0:14.7.0", lambda v: v < 49.0),
        ("thd:600:120:12:3", "1-0:72.7.124", lambda v: v == 12),
        ("power_factor:600:120:0.5", "1-0:33.7.0", lambda v: abs(v) == 0.5),
    ],
)
def test_disturbances_are_visible_only_in_their_window(text: str, code: str, check: object) -> None:
    disturbance = Disturbance.parse(text)
    model = E450Model(seed=4, start=START, config=ModelConfig(disturbances=(disturbance,)))
    before = model.snapshot(START + timedelta(seconds=590))
    during = model.snapshot(START + timedelta(seconds=660))
    after = model.snapshot(START + timedelta(seconds=800))
    assert callable(check)
    assert check(during[code]) and during.active_disturbances == (disturbance,)
    assert not check(before[code]) and not check(after[code])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("sag:1:2:0.3", "kind"),
        ("voltage_sag:1:2", "expected KIND"),
        ("voltage_sag:x:2:0.3", "numbers"),
        ("voltage_sag:1:0:0.3", "duration"),
        ("voltage_sag:1:2:1.5", "fraction"),
        ("voltage_sag:1:2:0.3:4", "phases"),
    ],
)
def test_disturbance_errors(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Disturbance.parse(text)


def test_load_profile_captures_every_quarter_hour() -> None:
    model = E450Model(seed=1, start=START + timedelta(minutes=7))
    model.advance(START + timedelta(hours=2))
    rows = list(model.profile)
    assert [r.at for r in rows] == [START + timedelta(minutes=15 * i) for i in range(1, 9)]
    for a, b in itertools.pairwise(rows):
        assert all(y >= x for x, y in zip(a.values, b.values, strict=True))
