"""The pipeline: sources -> validate -> store (readings + outbox, in one transaction) -> wake the sinks.

``Gateway(store, sources, sinks, validator).run(stop)`` runs until ``stop`` is set:

* every source streams in its own task (one slow meter never holds up another); a source whose stream
  fails unexpectedly is restarted after a back-off that doubles up to a minute;
* one writer task takes what the sources produced in batches (up to ``batch_max`` items, or what arrived
  within ``batch_window`` seconds), validates each reading, stores the batch with ``Store.add`` (readings and
  their outbox entries atomically), stores the quality events, updates the inventory, then wakes every
  sink with the stored batch and hands it the events and meter descriptions;
* every sink drains its own outbox (``Sink.run``) and confirms only what its peer accepted, so a sink that
  is down only makes its outbox grow; on return it drains in order;
* a retention task prunes readings older than ``retention_days`` that no sink still waits for.

Nothing is published before it is stored. On ``stop`` the sources are cancelled, what they already produced
is stored, and the sinks get a moment (``drain_timeout``) to empty their outboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from meterbridge.gateway.metrics import GatewayMetrics
from meterbridge.gateway.sources import Source, SourceItem
from meterbridge.gateway.validate import Validator
from meterbridge.readings import Reading
from meterbridge.sinks.base import Sink
from meterbridge.sinks.store import MeterInfo, QualityEvent, Store

__all__ = ["Gateway", "GatewayStats"]

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class GatewayStats:
    """Counters a running gateway keeps (for ``status`` and the benchmark)."""

    readings: int = 0
    flagged: int = 0
    events: int = 0
    batches: int = 0
    source_restarts: int = 0
    source_errors: dict[str, str] = field(default_factory=dict)


class Gateway:
    """Runs sources, the writer, sinks and retention (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        sources: Sequence[Source],
        sinks: Sequence[Sink] = (),
        validator: Validator | None = None,
        *,
        batch_max: int = 1000,
        batch_window: float = 0.05,
        queue_max: int = 20_000,
        retention_days: int = 0,
        drain_timeout: float = 5.0,
        restart_delay: float = 1.0,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names must be unique, got {names}")
        self.store = store
        self.sources = list(sources)
        self.sinks = list(sinks)
        self.validator = validator or Validator()
        self.batch_max = batch_max
        self.batch_window = batch_window
        self.retention_days = retention_days
        self.drain_timeout = drain_timeout
        self.restart_delay = restart_delay
        self.stats = GatewayStats()
        self.metrics = metrics
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_max)
        self._seen_meters: set[str] = set()

    # ------------------------------------------------------------ sources

    async def _run_source(self, source: Source) -> None:
        delay = self.restart_delay
        while True:
            try:
                async for item in source.stream():
                    await self._queue.put(item)
                    delay = self.restart_delay
                log.info("source %s: stream ended; restarting in %.1f s", source.name, delay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.source_errors[source.name] = f"{type(exc).__name__}: {exc}"
                log.exception("source %s failed; restarting in %.1f s", source.name, delay)
            self.stats.source_restarts += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)

    async def feed(self, item: SourceItem) -> None:
        """Hand one item to the writer as if a source had produced it."""
        await self._queue.put(item)

    # ------------------------------------------------------------ writer

    async def _next_batch(self) -> tuple[list[object], bool]:
        first = await self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_window
        while len(batch) < self.batch_max:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self._queue.get()
                except TimeoutError:
                    break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    async def process(self, items: Sequence[object]) -> None:
        """Validate, store and announce one batch (the writer's step; public for tests and the benchmark)."""
        readings: list[Reading] = []
        events: list[QualityEvent] = []
        meters: list[MeterInfo] = []
        validator = self.validator
        unseeded = {
            item.meter_id
            for item in items
            if isinstance(item, Reading) and validator.needs_seed(item.meter_id)
        }
        if unseeded:  # where each counter of a meter new to this run stood: one trip to the store thread
            store = self.store
            seeds = await asyncio.to_thread(
                lambda: [(m, store.latest(m, ok_only=True)) for m in sorted(unseeded)]
            )
            for meter_id, latest in seeds:
                validator.seed(meter_id, latest)
        for item in items:
            if isinstance(item, Reading):
                checked, raised = validator.check(item)
                readings.append(checked)
                events.extend(raised)
            elif isinstance(item, QualityEvent):
                events.append(item)
            elif isinstance(item, MeterInfo):
                meters.append(item)
            else:
                log.error("a source produced %r, which is not a Reading, QualityEvent or MeterInfo", item)
        ids, new_meters = await asyncio.to_thread(self._store_batch, readings, events, meters)
        if self.metrics is not None:
            self.metrics.stored(len(readings))
        self.stats.batches += 1
        self.stats.readings += len(readings)
        self.stats.flagged += sum(1 for r in readings if not r.ok)
        self.stats.events += len(events)
        entries = list(zip(ids, readings, strict=True)) if self.sinks else []
        for sink in self.sinks:
            if entries:
                sink.wake(entries)
            for meter in (*meters, *new_meters):
                await self._hand(sink, sink.on_meter(meter))
            for event in events:
                await self._hand(sink, sink.on_event(event))

    def _store_batch(
        self, readings: list[Reading], events: list[QualityEvent], meters: list[MeterInfo]
    ) -> tuple[list[int], list[MeterInfo]]:
        store = self.store
        ids = store.add(readings)
        for event in events:
            store.add_event(event)
        self._seen_meters.update(meter.id for meter in meters)
        last_seen: dict[str, datetime] = {}
        for reading in readings:
            if reading.meter_id not in last_seen or reading.timestamp > last_seen[reading.meter_id]:
                last_seen[reading.meter_id] = reading.timestamp
        # descriptions, then when each meter was last seen: one transaction
        store.upsert_meters([*meters, *(MeterInfo(id=m, last_seen=when) for m, when in last_seen.items())])
        new: list[MeterInfo] = []
        for meter_id, when in last_seen.items():
            if meter_id not in self._seen_meters:
                self._seen_meters.add(meter_id)
                new.append(MeterInfo(id=meter_id, last_seen=when))
        return ids, new

    @staticmethod
    async def _hand(sink: Sink, call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sink %s failed to take an event or meter", sink.name)

    async def _writer(self) -> None:
        while True:
            batch, stopping = await self._next_batch()
            if batch:
                await self.process(batch)
            if stopping:
                return

    # ------------------------------------------------------------ retention

    async def _retention(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            cutoff = datetime.now(UTC) - timedelta(days=self.retention_days)
            removed = await asyncio.to_thread(self.store.prune, cutoff)
            if removed:
                log.info("retention: removed %d readings older than %s", removed, cutoff.isoformat())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3600):
                    await stop.wait()

    # ------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        for sink in self.sinks:
            await asyncio.to_thread(self.store.register_sink, sink.name)
        self._seen_meters.update(m.id for m in await asyncio.to_thread(self.store.meters))
        sink_stop = asyncio.Event()
        writer = asyncio.create_task(self._writer(), name="gateway-writer")
        source_tasks = [
            asyncio.create_task(self._run_source(s), name=f"source-{s.name}") for s in self.sources
        ]
        sink_tasks = [
            asyncio.create_task(s.run(self.store, sink_stop), name=f"sink-{s.name}") for s in self.sinks
        ]
        extra = (
            [asyncio.create_task(self._retention(stop), name="retention")] if self.retention_days > 0 else []
        )
        stopper = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopper, writer, *sink_tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in source_tasks + extra:
                task.cancel()
            await asyncio.gather(*source_tasks, *extra, return_exceptions=True)
            if not writer.done():
                await self._queue.put(_STOP)
                await writer
            # give the sinks a moment to drain what was just stored
            if self.sinks:
                for sink in self.sinks:
                    sink.wake()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.drain_timeout):
                        await self._outboxes_empty()
            sink_stop.set()
            await asyncio.gather(*sink_tasks, return_exceptions=True)
            stopper.cancel()

    async def _outboxes_empty(self) -> None:
        while await asyncio.to_thread(self.store.outbox_depth) > 0:
            await asyncio.sleep(0.05)
