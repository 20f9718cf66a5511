"""The sink interface: how stored readings, quality events and the meter inventory leave the gateway.

A sink is anything that hands data to a peer (an MQTT broker, a fleet database). The gateway stores every
reading first (``Store.add`` enqueues it in each registered sink's outbox) and then wakes the sinks. A sink

* has a ``name`` (its outbox in the store; stable across restarts, e.g. ``"mqtt"``),
* drains its outbox in ``run(store, stop)``: ``store.pending(name)`` in id order, send, and only after the
  peer accepted (MQTT QoS 1 PUBACK, a committed INSERT) ``store.confirm(name, ids)``; on a peer outage it
  keeps the entries and retries, so an outage or a crash loses nothing and the outbox drains in order,
* is told about quality events (``on_event``) and about meters (``on_meter``, for discovery), and
* is woken by the gateway after each stored batch (``wake(entries)``, with the batch's outbox entries: a
  sink may take them from memory instead of reading them back; it may also just poll).

``BaseSink`` implements that loop; a concrete sink only writes ``publish(batch)`` (and, if it likes,
``connect``/``disconnect``, ``on_event``, ``on_meter``). Readings whose quality flags make them unfit for
publication as values (``publishable()`` is false: implausible, a counter that went backwards, a wrong unit,
a meter error, stale) are *not* handed to ``publish`` unless the sink sets ``publish_flagged = True``; they
are confirmed without sending, since they are stored, flagged, and announced by a quality event.
Store calls are synchronous and made through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

from meterbridge.readings import Quality, Reading
from meterbridge.sinks.store import MeterInfo, QualityEvent, Store

__all__ = ["PUBLISHABLE_FLAGS", "BaseSink", "Sink", "publishable"]

log = logging.getLogger(__name__)

#: Flags a reading may carry and still be published as a value: decrypted-but-unverified, and a value that is
#: plausible but outside the guide's quality band (the band raises an event; the value is real).
PUBLISHABLE_FLAGS: Final = Quality.UNAUTHENTICATED | Quality.THRESHOLD


def publishable(reading: Reading) -> bool:
    """True when the reading may be shown as a value (no flag other than ``PUBLISHABLE_FLAGS``)."""
    return not (int(reading.quality) & ~int(PUBLISHABLE_FLAGS))


@runtime_checkable
class Sink(Protocol):
    """What the gateway needs of a sink (see the module docstring)."""

    name: str

    async def run(self, store: Store, stop: asyncio.Event) -> None:
        """Drain ``store.pending(self.name)`` until ``stop`` is set; confirm only what the peer accepted."""
        ...

    def wake(self, entries: Sequence[tuple[int, Reading]] = ()) -> None:
        """New readings are in the outbox; ``entries`` are they, as ``(outbox id, reading)`` in id order
        (called on the event loop, after the store committed them; must not block)."""
        ...

    async def on_event(self, event: QualityEvent) -> None:
        """A quality event was stored (raised or cleared)."""
        ...

    async def on_meter(self, meter: MeterInfo) -> None:
        """A meter appeared or its description changed (discovery)."""
        ...


class BaseSink:
    """The outbox loop shared by sinks: pending -> ``publish`` -> confirm, retrying on failure.

    Subclasses implement ``publish(batch) -> ids accepted``; an exception from ``publish`` or ``connect``
    keeps the whole batch and retries after ``retry_delay`` (doubling up to ``max_retry_delay``). Up to
    ``pipeline_depth`` calls of ``publish`` run at once (set it to 1 for a peer that must see one batch
    at a time); they are started in id order.

    The entries the gateway hands to ``wake`` are kept in memory (up to ``hot_max``) and sent from there
    while nothing older waits in the outbox; the outbox stays the record of what is unconfirmed, so an
    overflow, a failure or a restart only means reading the entries back from the store.
    """

    name: str = "sink"
    batch_size: int = 500
    pipeline_depth: int = 4
    poll_interval: float = 1.0
    retry_delay: float = 0.5
    max_retry_delay: float = 30.0
    publish_flagged: bool = False
    hot_max: int = 50_000  # entries kept for the sink in memory (about 300 bytes each)

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._hot: deque[tuple[int, Reading]] = deque()  # entries handed to wake(), in id order
        # every outbox entry after this id is in _hot (or was taken from it for the batch ending there)...
        self._hot_mark: int | None = None
        self._hot_full = False  # ...up to the end of _hot only (later ones were not kept: hot_max)
        self.confirmed = 0  # outbox entries settled since start (sent and accepted, or skipped as flagged)
        self.connected = False
        self.last_error: str | None = None

    # -- to implement
    async def connect(self) -> None:
        """Open the connection to the peer (called before publishing and after a failure)."""
        self.connected = True

    async def disconnect(self) -> None:
        self.connected = False

    async def publish(self, batch: Sequence[tuple[int, Reading]]) -> Sequence[int]:
        """Send ``batch`` (id order); return the ids the peer accepted."""
        raise NotImplementedError

    async def on_event(self, event: QualityEvent) -> None:
        return None

    async def on_meter(self, meter: MeterInfo) -> None:
        return None

    # -- the loop
    def wake(self, entries: Sequence[tuple[int, Reading]] = ()) -> None:
        if entries and not self._hot_full:
            hot = self._hot
            if hot and entries[0][0] <= hot[-1][0]:  # not after what is held: trust the outbox only
                hot.clear()
                self._hot_mark = None
            if len(hot) + len(entries) > self.hot_max:
                self._hot_full = True  # the outbox has the newer ones; memory serves what it holds first
            else:
                if self._hot_mark is None:
                    self._hot_mark = entries[0][0] - 1
                hot.extend(entries)
        self._wake.set()

    def _take_hot(self, after: int) -> list[tuple[int, Reading]] | None:
        """Up to ``batch_size`` entries after ``after`` from memory; None when the outbox may hold
        entries after ``after`` that memory does not (then the store is read): before the handing over
        began, or what was taken from memory and not confirmed (``after`` went back after a failure)."""
        mark = self._hot_mark
        if mark is None or after < mark:
            return None
        hot = self._hot
        while hot and hot[0][0] <= after:
            hot.popleft()
        if not hot and self._hot_full:  # memory ran out ahead of the outbox: read it from here on
            self._hot_mark, self._hot_full = None, False
            return None
        batch = [hot.popleft() for _ in range(min(self.batch_size, len(hot)))]
        self._hot_mark = batch[-1][0] if batch else after
        return batch

    async def _wait(self, stop: asyncio.Event, timeout: float) -> None:
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            self._wake.clear()

    async def drain_once(self, store: Store) -> int:
        """Send one batch; return how many outbox entries it settled."""
        batch = await asyncio.to_thread(store.pending, self.name, self.batch_size)
        if not batch:
            return 0
        send, skipped = self._split(batch)
        accepted = list(await self.publish(send)) if send else []
        done = sorted({*accepted, *skipped})
        await asyncio.to_thread(store.confirm, self.name, done)
        self.confirmed += len(done)
        return len(done)

    def _split(self, batch: Sequence[tuple[int, Reading]]) -> tuple[list[tuple[int, Reading]], list[int]]:
        if self.publish_flagged:
            return list(batch), []
        return [(i, r) for i, r in batch if publishable(r)], [i for i, r in batch if not publishable(r)]

    async def run(self, store: Store, stop: asyncio.Event) -> None:
        """The outbox loop, with up to ``pipeline_depth`` batches in flight.

        Batches are read in id order (``pending(after=...)``) and handed to ``publish`` as separate tasks,
        so the next batch goes out while the peer still acknowledges the previous one; each batch is
        confirmed when its own ``publish`` returns, oldest first. On any failure every batch in flight is
        abandoned (their entries stay in the outbox), the connection is closed, and after the back-off the
        outbox is read again from its oldest entry: nothing is skipped, at the price of re-sending what the
        peer may already have had (at-least-once; receivers deduplicate by id).
        """
        await asyncio.to_thread(store.register_sink, self.name)
        delay = self.retry_delay
        in_flight: deque[tuple[asyncio.Task[Sequence[int]] | None, list[int], int]] = deque()
        after = 0
        try:
            while not stop.is_set():
                try:
                    if not self.connected:
                        await self.connect()
                    while len(in_flight) < max(1, self.pipeline_depth):
                        batch = self._take_hot(after)
                        if batch is None:
                            batch = await asyncio.to_thread(store.pending, self.name, self.batch_size, after)
                        if not batch:
                            break
                        after = batch[-1][0]
                        send, skipped = self._split(batch)
                        task = asyncio.ensure_future(self.publish(send)) if send else None
                        in_flight.append((task, skipped, len(batch)))
                    if not in_flight:
                        after = 0  # idle: the next look starts from the oldest entry again
                        await self._wait(stop, self.poll_interval)
                        continue
                    task, skipped, size = in_flight.popleft()
                    accepted = list(await task) if task is not None else []
                    if task is not None and len(accepted) + len(skipped) < size:
                        after = 0  # the peer took only part: re-read the rest
                    done = sorted({*accepted, *skipped})
                    await asyncio.to_thread(store.confirm, self.name, done)
                    self.confirmed += len(done)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("sink %s: %s; retrying in %.1f s", self.name, self.last_error, delay)
                    await self._abandon(in_flight)
                    after = 0
                    with contextlib.suppress(Exception):
                        await self.disconnect()
                    self.connected = False
                    await self._wait(stop, delay)
                    delay = min(delay * 2, self.max_retry_delay)
                    continue
                delay = self.retry_delay
                self.last_error = None
        finally:
            await self._abandon(in_flight)
            with contextlib.suppress(Exception):
                await self.disconnect()

    @staticmethod
    async def _abandon(
        in_flight: deque[tuple[asyncio.Task[Sequence[int]] | None, list[int], int]],
    ) -> None:
        tasks = [t for t, _, _ in in_flight if t is not None]
        in_flight.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
