"""The pipeline with in-memory sources and sinks: store first, publish after, outage and restart lose nothing,
one slow meter does not hold up the others, a bus serves one request at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from meterbridge.errors import TransportError
from meterbridge.gateway.pipeline import Gateway
from meterbridge.gateway.sources import PolledSource, SourceItem, TransportLocks
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.base import BaseSink, Sink, publishable
from meterbridge.sinks.store import MeterInfo, QualityEvent, Store, open_store

T0 = datetime(2026, 3, 1, tzinfo=UTC)
E_IMPORT = ObisCode.parse("1.8.0")
VOLT = ObisCode.parse("32.7.0")


def energy(meter: str, n: int, value: int | None = None) -> Reading:
    return Reading(meter, E_IMPORT, 1000 + n if value is None else value, "Wh", T0 + timedelta(seconds=n))


class ListSource:
    """Yields a fixed list, then waits forever (like a quiet meter)."""

    def __init__(self, name: str, items: Sequence[SourceItem]) -> None:
        self.name = name
        self.items = list(items)

    async def stream(self) -> AsyncIterator[SourceItem]:
        for item in self.items:
            yield item
        await asyncio.Event().wait()


class RecordingSink(BaseSink):
    """Accepts everything after ``fail_first`` failed publish attempts (a broker outage)."""

    poll_interval = 0.02
    retry_delay = 0.01
    max_retry_delay = 0.02

    def __init__(self, name: str = "rec", fail_first: int = 0) -> None:
        super().__init__()
        self.name = name
        self.fail_first = fail_first
        self.published: list[tuple[int, Reading]] = []
        self.events: list[QualityEvent] = []
        self.meters: list[MeterInfo] = []

    async def publish(self, batch: Sequence[tuple[int, Reading]]) -> Sequence[int]:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionRefusedError("broker down")
        self.published.extend(batch)
        return [i for i, _ in batch]

    async def on_event(self, event: QualityEvent) -> None:
        self.events.append(event)

    async def on_meter(self, meter: MeterInfo) -> None:
        self.meters.append(meter)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(str(tmp_path / "gw.sqlite"))
    yield s  # type: ignore[misc]
    s.close()


async def run_until(gateway: Gateway, condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    finally:
        stop.set()
        await task


def test_base_sink_satisfies_the_protocol() -> None:
    assert isinstance(RecordingSink(), Sink)


async def test_readings_are_stored_then_published_in_order_and_flagged_ones_held_back(store: Store) -> None:
    items: list[SourceItem] = [energy("m1", n) for n in range(50)]
    items.insert(20, energy("m1", 20, value=0))  # a garbled counter value
    items.append(MeterInfo(id="m1", name="House", protocol="optical"))
    sink = RecordingSink()
    gw = Gateway(store, [ListSource("m1", items)], [sink])
    await run_until(gw, lambda: gw.stats.readings == 51 and store.outbox_depth() == 0)
    stored = store.readings("m1")
    assert len(stored) == 51
    bad = [r for r in stored if not r.ok]
    assert [(r.value, r.quality) for r in bad] == [(0, Quality.NOT_MONOTONIC)]
    published = [r for _, r in sink.published]
    assert all(publishable(r) for r in published)
    assert [r.value for r in published] == [1000 + n for n in range(50)]
    ids = [i for i, _ in sink.published]
    assert ids == sorted(ids)
    kinds = [(e.kind, e.active) for e in sink.events]
    assert kinds == [("not_monotonic", True), ("not_monotonic", False)]
    assert [(e.kind, e.active) for e in reversed(store.events())] == kinds
    assert store.meters()[0].name == "House" and store.meters()[0].last_seen == T0 + timedelta(seconds=49)
    assert any(m.id == "m1" for m in sink.meters)


async def test_broker_outage_keeps_everything_and_drains_in_order(store: Store) -> None:
    sink = RecordingSink(fail_first=5)
    gw = Gateway(store, [ListSource("m1", [energy("m1", n) for n in range(300)])], [sink])
    await run_until(gw, lambda: len(sink.published) == 300)
    assert [r.value for _, r in sink.published] == [1000 + n for n in range(300)]
    assert store.outbox_depth("rec") == 0
    assert sink.fail_first == 0


async def test_restart_resumes_from_the_outbox(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.sqlite")
    first = open_store(path)
    down = RecordingSink(fail_first=10**9)  # the peer never answers in the first run
    gw = Gateway(first, [ListSource("m1", [energy("m1", n) for n in range(40)])], [down], drain_timeout=0.1)
    await run_until(gw, lambda: gw.stats.readings == 40)
    first.close()
    assert down.published == []

    second = open_store(path)
    assert second.outbox_depth("rec") == 40
    up = RecordingSink()
    gw2 = Gateway(second, [ListSource("m1", [energy("m1", 40 + n) for n in range(5)])], [up])
    await run_until(gw2, lambda: len(up.published) == 45)
    assert [r.value for _, r in up.published] == [1000 + n for n in range(45)]
    # the restarted validator knows where the counter stood: a lower value is flagged
    second.close()


async def test_validator_state_survives_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.sqlite")
    with open_store(path) as s:
        gw = Gateway(s, [ListSource("m1", [energy("m1", 0, 5000)])])
        await run_until(gw, lambda: gw.stats.readings == 1)
    with open_store(path) as s:
        gw = Gateway(s, [ListSource("m1", [energy("m1", 1, 4000)])])
        await run_until(gw, lambda: gw.stats.readings == 1)
        assert s.readings("m1")[-1].quality == Quality.NOT_MONOTONIC


class FakeMeter(PolledSource):
    """A polled meter: answers after ``delay`` seconds, fails while ``failing``."""

    active = 0
    max_active = 0

    def __init__(
        self,
        name: str,
        *,
        delay: float = 0.0,
        lock: asyncio.Lock | None = None,
        interval: float = 0.01,
        timeout: float = 5.0,
    ) -> None:
        super().__init__(name, interval=interval, timeout=timeout, lock=lock, silent_after=2)
        self.delay = delay
        self.polls = 0
        self.failing = False

    async def poll(self) -> Sequence[SourceItem]:
        FakeMeter.active += 1
        FakeMeter.max_active = max(FakeMeter.max_active, FakeMeter.active)
        try:
            await asyncio.sleep(self.delay)
            if self.failing:
                raise TransportError("no reply")
            self.polls += 1
            return [energy(self.name, self.polls)]
        finally:
            FakeMeter.active -= 1


async def test_one_slow_meter_does_not_hold_up_the_others(store: Store) -> None:
    slow = FakeMeter("slow", delay=30.0, timeout=60.0)
    fast = FakeMeter("fast")
    gw = Gateway(store, [slow, fast])
    await run_until(gw, lambda: fast.polls >= 20)
    assert slow.polls == 0  # still in its first poll while the fast meter was read 20 times
    assert len(store.readings("fast")) >= 19


async def test_meters_on_one_bus_never_overlap(store: Store) -> None:
    locks = TransportLocks()
    bus = locks.for_transport("serial:///dev/ttyUSB0")
    assert locks.for_transport("serial:///dev/ttyUSB0") is bus
    meters = [FakeMeter(f"b{i}", delay=0.005, lock=bus) for i in range(4)]
    FakeMeter.max_active = 0
    gw = Gateway(store, meters)
    await run_until(gw, lambda: all(m.polls >= 3 for m in meters))
    assert FakeMeter.max_active == 1


async def test_silent_meter_raises_and_clears_an_event(store: Store) -> None:
    meter = FakeMeter("m9", timeout=0.05)
    meter.failing = True
    sink = RecordingSink()
    gw = Gateway(store, [meter], [sink])
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    async with asyncio.timeout(10):
        while not sink.events:
            await asyncio.sleep(0.01)
        assert sink.events[0].kind == "meter_silent" and sink.events[0].active
        assert sink.events[0].value == Decimal(2)
        meter.failing = False
        while len(sink.events) < 2:
            await asyncio.sleep(0.01)
    stop.set()
    await task
    assert not sink.events[1].active
    assert [e.kind for e in store.events(meter="m9")] == ["meter_silent", "meter_silent"]


async def test_timeout_counts_as_a_failure(store: Store) -> None:
    meter = FakeMeter("late", delay=1.0, timeout=0.02)
    gw = Gateway(store, [meter])
    await run_until(gw, lambda: bool(store.events(kind="meter_silent")))
    assert meter.last_error is not None and "Timeout" in meter.last_error


class CrashingSource:
    def __init__(self) -> None:
        self.name = "crashy"
        self.runs = 0

    async def stream(self) -> AsyncIterator[SourceItem]:
        self.runs += 1
        yield energy("c", self.runs)
        raise RuntimeError("driver bug")


async def test_a_failing_source_is_restarted(store: Store) -> None:
    source = CrashingSource()
    gw = Gateway(store, [source], restart_delay=0.01)
    await run_until(gw, lambda: source.runs >= 3 and gw.stats.readings >= 3)
    assert "driver bug" in gw.stats.source_errors["crashy"]


def test_duplicate_source_names_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="unique"):
        Gateway(store, [ListSource("a", []), ListSource("a", [])])


class HalfSink(RecordingSink):
    """Accepts only the first half of each batch (a peer that acknowledged part of what it got)."""

    batch_size = 10

    async def publish(self, batch: Sequence[tuple[int, Reading]]) -> Sequence[int]:
        self.published.extend(batch)
        return [i for i, _ in batch[: max(1, len(batch) // 2)]]


async def test_partly_accepted_batches_are_sent_again_until_accepted(store: Store) -> None:
    sink = HalfSink()
    gw = Gateway(store, [ListSource("m1", [energy("m1", n) for n in range(100)])], [sink])
    await run_until(gw, lambda: gw.stats.readings == 100 and store.outbox_depth() == 0)
    assert {r.value for _, r in sink.published} == {1000 + n for n in range(100)}


async def test_sink_pipelines_batches_but_confirms_only_acknowledged(store: Store) -> None:
    release = asyncio.Event()
    started: list[int] = []

    class SlowPeer(RecordingSink):
        batch_size = 10
        pipeline_depth = 3

        async def publish(self, batch: Sequence[tuple[int, Reading]]) -> Sequence[int]:
            started.append(batch[0][0])
            await release.wait()
            self.published.extend(batch)
            return [i for i, _ in batch]

    sink = SlowPeer()
    gw = Gateway(store, [ListSource("m1", [energy("m1", n) for n in range(50)])], [sink])
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    async with asyncio.timeout(10):
        while len(started) < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert len(started) == 3 and started == sorted(started)  # three batches in flight, no more
        assert store.outbox_depth("rec") == 50  # nothing confirmed before the peer answered
        release.set()
        while store.outbox_depth("rec"):
            await asyncio.sleep(0.01)
    stop.set()
    await task
    assert [r.value for _, r in sink.published] == [1000 + n for n in range(50)]


async def test_postgresql_as_the_gateways_own_store(postgres_dsn: str) -> None:
    pg = open_store(postgres_dsn)
    try:
        sink = RecordingSink(fail_first=2)
        items: list[SourceItem] = [energy("m1", n) for n in range(120)]
        items.insert(50, energy("m1", 50, value=3))  # backwards: flagged, held back
        gw = Gateway(pg, [ListSource("m1", items)], [sink])
        await run_until(gw, lambda: gw.stats.readings == 121 and pg.outbox_depth() == 0)
        assert [r.value for _, r in sink.published] == [1000 + n for n in range(120)]
        assert [r.quality for r in pg.readings("m1") if not r.ok] == [Quality.NOT_MONOTONIC]
        assert [e.kind for e in pg.events()] == ["not_monotonic", "not_monotonic"]
    finally:
        pg.close()


async def test_retention_prunes_old_confirmed_readings_only(store: Store) -> None:
    store.register_sink("rec")
    old = [energy("m1", n) for n in range(3)]  # T0 = 2026-03-01: older than one day by now
    ids = store.add(old)
    store.confirm("rec", ids[:2])  # the third is still waiting for the sink
    gw = Gateway(store, [], retention_days=1)
    await run_until(gw, lambda: len(store.readings("m1")) == 1)
    assert [r.value for r in store.readings("m1")] == [1002]


def test_store_failures_are_store_errors(tmp_path: Path) -> None:
    import sqlite3

    from meterbridge.sinks.store import StoreError

    path = tmp_path / "ro.sqlite"
    open_store(str(path)).close()
    s = open_store(str(path))
    s._conn.execute("PRAGMA query_only = 1")  # every write now fails inside SQLite
    with pytest.raises(StoreError, match=r"readonly|read-only|query_only") as info:
        s.add([energy("m1", 0)])
    assert isinstance(info.value.__cause__, sqlite3.Error)
    s.close()


class CountingStore:
    """Wraps a store and counts ``pending`` calls (how often a sink read its outbox back)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.pending_calls = 0

    def pending(self, sink: str, limit: int = 500, after: int = 0) -> list[tuple[int, Reading]]:
        self.pending_calls += 1
        return self._store.pending(sink, limit, after)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


async def test_sink_takes_the_stored_batches_from_memory(store: Store) -> None:
    counting = CountingStore(store)
    sink = RecordingSink()
    gw = Gateway(counting, [ListSource("m1", [energy("m1", n) for n in range(2000)])], [sink])  # type: ignore[arg-type]
    await run_until(gw, lambda: len(sink.published) == 2000 and store.outbox_depth("rec") == 0)
    assert [r.value for _, r in sink.published] == [1000 + n for n in range(2000)]
    assert sink.confirmed == 2000
    # one look at the outbox when the sink starts (and after each idle spell), never one per batch
    assert counting.pending_calls < len({i // sink.batch_size for i, _ in sink.published})


async def drain(sink: BaseSink, store: Store, stop: asyncio.Event) -> None:
    """Run ``sink`` until its outbox is empty."""
    task = asyncio.create_task(sink.run(store, stop))
    async with asyncio.timeout(10):
        while store.outbox_depth(sink.name):
            await asyncio.sleep(0.01)
    stop.set()
    await task


def _sink_over(store: Store, **attrs: int) -> tuple[RecordingSink, asyncio.Event]:
    sink = RecordingSink()
    for name, value in attrs.items():
        setattr(sink, name, value)
    store.register_sink(sink.name)
    return sink, asyncio.Event()


async def test_memory_overflow_falls_back_to_the_outbox_in_order(store: Store) -> None:
    sink, stop = _sink_over(store, hot_max=100, batch_size=40)
    for start in range(0, 500, 50):  # the gateway stores and hands over faster than the sink runs
        batch = [energy("m1", n) for n in range(start, start + 50)]
        sink.wake(list(zip(store.add(batch), batch, strict=True)))
    await drain(sink, store, stop)
    ids = [i for i, _ in sink.published]
    assert ids == sorted(set(ids)) and len(ids) == 500  # each once, in order: memory, then the outbox
    assert [r.value for _, r in sink.published] == [1000 + n for n in range(500)]


async def test_entries_stored_before_the_hand_over_are_read_back_first(store: Store) -> None:
    older = [energy("m1", n) for n in range(30)]  # e.g. left in the outbox by the previous run
    sink, stop = _sink_over(store)
    store.add(older)
    newer = [energy("m1", n) for n in range(30, 60)]
    sink.wake(list(zip(store.add(newer), newer, strict=True)))  # memory starts after a gap
    await drain(sink, store, stop)
    assert [r.value for _, r in sink.published] == [1000 + n for n in range(60)]


async def test_a_failed_batch_taken_from_memory_is_sent_again_from_the_outbox(store: Store) -> None:
    sink, stop = _sink_over(store, fail_first=2)
    batch = [energy("m1", n) for n in range(120)]
    sink.wake(list(zip(store.add(batch), batch, strict=True)))
    await drain(sink, store, stop)
    assert [r.value for _, r in sink.published] == [1000 + n for n in range(120)]
