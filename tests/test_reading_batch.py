"""``Reading.batch``: the same readings as one constructor call each, the same checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading, Value

NOW = datetime(2026, 5, 4, 11, 39, 21, tzinfo=UTC)

keys = st.one_of(
    st.builds(ObisCode, *(st.integers(0, 255) for _ in range(6))),
    st.text(min_size=1, max_size=20),
)
values: st.SearchStrategy[Value] = st.one_of(
    st.none(),
    st.integers(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.booleans(),
)
units = st.one_of(st.none(), st.sampled_from(["Wh", "W", "V", "A"]))


@settings(max_examples=100, deadline=None)
@given(
    meter=st.text(min_size=1, max_size=16),
    entries=st.lists(st.tuples(keys, values, units), max_size=20),
    quality=st.sampled_from(list(Quality)),
    minutes=st.integers(-720, 720),
)
def test_batch_equals_one_constructor_call_each(
    meter: str,
    entries: list[tuple[ObisCode | str, Value, str | None]],
    quality: Quality,
    minutes: int,
) -> None:
    stamp = NOW.astimezone(timezone(timedelta(minutes=minutes)))
    batch = Reading.batch(meter, stamp, entries, quality)
    single = tuple(Reading(meter, k, v, u, stamp, quality) for k, v, u in entries)
    assert batch == single
    for made, expected in zip(batch, single, strict=True):
        assert type(made) is Reading and repr(made) == repr(expected) and hash(made) == hash(expected)
        assert made.name is None and made.quality is quality


def test_batch_readings_are_frozen_and_behave_like_readings() -> None:
    (r,) = Reading.batch("LGZ1", NOW, [(ObisCode.parse("1.8.0"), Decimal("1.5"), "Wh")])
    with pytest.raises(AttributeError):
        r.value = 1  # type: ignore[misc]
    assert r.obis == ObisCode.parse("1.8.0") and r.ok and r.key_text == "1-0:1.8.0.255"
    assert r.flagged(Quality.STALE).quality is Quality.STALE


def test_batch_keeps_the_checks() -> None:
    with pytest.raises(ValueError, match="meter_id"):
        Reading.batch("", NOW, [("x", 1, None)])
    with pytest.raises(ValueError, match="timezone"):
        Reading.batch("LGZ1", datetime(2026, 1, 1), [("x", 1, None)])
    # no values: no reading, nothing to check (as with a loop of constructor calls)
    assert Reading.batch("", datetime(2026, 1, 1), []) == ()
    assert Reading.batch("LGZ1", NOW, iter([("a", 1, None), ("b", 2, "W")]))[1].unit == "W"


def test_constructor_keeps_the_dataclass_contract() -> None:
    import dataclasses
    import pickle

    r = Reading(meter_id="LGZ1", key="x", value=1, unit=None, timestamp=NOW)
    assert (r.quality, r.name) == (Quality.OK, None)
    assert [f.name for f in dataclasses.fields(Reading)] == [
        "meter_id", "key", "value", "unit", "timestamp", "quality", "name",
    ]  # fmt: skip
    assert Reading.__match_args__ == ("meter_id", "key", "value", "unit", "timestamp", "quality", "name")
    named = Reading("LGZ1", "x", 1, None, NOW, Quality.STALE, "a name")
    assert named == dataclasses.replace(r, quality=Quality.STALE)  # name is not compared
    assert dataclasses.replace(named, value=2).name == "a name"
    assert pickle.loads(pickle.dumps(named)) == named and pickle.loads(pickle.dumps(named)).name == "a name"
    assert not hasattr(r, "__dict__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.unit = "W"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Reading("LGZ1", "x", 1, None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="meter_id"):
        Reading("", "x", 1, None, NOW)
    with pytest.raises(ValueError, match="timezone"):
        dataclasses.replace(r, timestamp=datetime(2026, 1, 1))
