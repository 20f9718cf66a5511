"""``meterbridge.sinks.history``: boundaries, tariff keys, the fast latest/keys, series edge cases."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.readings import Reading
from meterbridge.sinks.history import MAX_POINTS, History, period_boundaries, tariff_keys


def test_days_follow_daylight_saving_time() -> None:
    vienna = ZoneInfo("Europe/Vienna")
    days = period_boundaries(date(2026, 3, 28), date(2026, 3, 30), "day", vienna)
    hours = [(end - start) / 3_600_000 for _, start, end in days]
    assert [label for label, _, _ in days] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert hours == [24, 23, 24]  # clocks go forward on 29 March
    autumn = period_boundaries(date(2026, 10, 25), date(2026, 10, 25), "day", vienna)
    assert (autumn[0][2] - autumn[0][1]) / 3_600_000 == 25
    assert days[0][1] == int(datetime(2026, 3, 28, tzinfo=vienna).timestamp() * 1000)


def test_months_and_bad_input() -> None:
    months = period_boundaries(date(2025, 11, 15), date(2026, 2, 1), "month", ZoneInfo("UTC"))
    assert [m[0] for m in months] == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert all(a[2] == b[1] for a, b in itertools.pairwise(months))  # contiguous
    with pytest.raises(ValueError, match="before its start"):
        period_boundaries(date(2026, 2, 1), date(2026, 1, 1), "day", ZoneInfo("UTC"))
    with pytest.raises(ValueError, match="'day' or 'month'"):
        period_boundaries(date(2026, 1, 1), date(2026, 1, 1), "week", ZoneInfo("UTC"))  # type: ignore[arg-type]


def test_tariff_keys_prefer_channel_zero_and_ignore_others() -> None:
    keys = [
        "1-1:1.8.1.255",
        "1-0:1.8.1.255",
        "1-0:1.8.2.255",
        "1-0:2.8.1.255",
        "mbus/0/energy",
        "1-0:1.8.0.101",
    ]
    assert tariff_keys(keys) == {"t1": "1-0:1.8.1.255", "t2": "1-0:1.8.2.255", "total": "1-0:1.8.0.101"}
    assert tariff_keys(keys, "2.8") == {"t1": "1-0:2.8.1.255"}
    assert tariff_keys(["1-1:1.8.1.255"]) == {"t1": "1-1:1.8.1.255"}  # the E450 push's channel 1
    assert tariff_keys([]) == {}


def test_keys_and_latest_match_the_store(known: Any) -> None:
    history = History(known.store)
    for meter_id in ("e450", "heat-7", "nobody"):
        expected = known.store.latest(meter_id)
        assert history.keys(meter_id) == sorted(expected)
        assert history.latest(meter_id) == expected


def test_series_edges(known: Any) -> None:
    history = History(known.store)
    with pytest.raises(ValueError, match="empty"):
        history.series("e450", "1-0:32.7.0.255", 10, 10)
    empty = history.series("e450", "1-0:32.7.0.255", 0, 1000)
    assert empty.raw and empty.t == [] and empty.unit == "V"  # unit from the newest reading even so
    nothing = history.series("nobody", "x", 0, 1000)
    assert nothing.t == [] and nothing.unit is None
    base = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp() * 1000)
    capped = history.series("e450", "1-0:32.7.0.255", base, base + 10 * 86_400_000, 10**6)
    assert not capped.raw or len(capped.t) <= MAX_POINTS
    one = history.series("e450", "1-0:32.7.0.255", base, base + 10 * 86_400_000, 1)
    assert len(one.t) == 1 and one.count == [960] and one.bucket_ms == 10 * 86_400_000
    assert history.time_range("e450", "1-0:32.7.0.255") == (base, base + 959 * 900_000)
    assert history.time_range("e450", "nothing") is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=40), st.integers(1, 50))
def test_series_conserves_rows_for_any_points(tmp_path_factory: Any, offsets: list[int], points: int) -> None:
    from meterbridge.sinks.store import open_store

    path = tmp_path_factory.mktemp("h") / "s.sqlite"
    with open_store(str(path)) as store:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        store.add(
            [
                Reading("m", "k", Decimal(i), "W", start + timedelta(milliseconds=o))
                for i, o in enumerate(offsets)
            ]
        )
        base = int(start.timestamp() * 1000)
        series = History(store).series("m", "k", base, base + 10**6 + 1, points)
        assert series.total == len(offsets)
        assert len(series.t) <= points
        assert min(series.vmin) == min(range(len(offsets))) and max(series.vmax) == len(offsets) - 1
        assert series.t == sorted(series.t)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_bucket_averages_are_rounded_to_six_places_by_the_database(
    request: pytest.FixtureRequest, tmp_path: Any, backend: str
) -> None:
    from meterbridge.sinks.store import open_store

    url = str(tmp_path / "s.sqlite") if backend == "sqlite" else request.getfixturevalue("postgres_dsn")
    with open_store(url) as store:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        values = [1, 2, 2, 10, 0, 0, 7, 7, 7]  # three buckets of three: 5/3, 10/3, 7
        store.add([Reading("m", "k", v, "W", start + timedelta(seconds=i)) for i, v in enumerate(values)])
        base = int(start.timestamp() * 1000)
        series = History(store).series("m", "k", base, base + 9000, 3)
        assert not series.raw and series.count == [3, 3, 3]
        assert series.vavg == [1.666667, 3.333333, 7.0]
        assert series.vmin == [1.0, 0.0, 7.0] and series.vmax == [2.0, 10.0, 7.0]
