"""Fault injection for every simulated device (E450, M-Bus slaves, anything on a Transport).

Generic on purpose: the M-Bus simulator reuses it. Two pieces:

* :class:`FaultyTransport` wraps the transport a simulated device *writes* to and damages
  what it sends, as a bad line or a sick meter would, driven by a :class:`FaultConfig` and
  a seeded generator (reproducible):

  - ``drop_rate``: probability that a byte is lost;
  - ``flip_rate``: probability that a byte has one bit flipped;
  - ``extra_rate``: probability that a write gets a stray byte inserted at a random place;
  - ``late_rate`` / ``late_delay``: probability that a write (a reply) is sent
    ``late_delay`` seconds late (past a master's reply window);
  - ``silent``: windows ``(start, duration)`` in seconds on the device's clock, counted
    from ``FaultyTransport`` creation, during which everything written is swallowed (a
    meter that stops answering);
  - ``mute_rate``: probability that a whole write is swallowed.

  ``read`` passes through untouched (the device hears its master). ``FaultyTransport.stats``
  counts what was done (``dropped``, ``flipped``, ``extra``, ``late``, ``silenced``,
  ``muted``) so tests can check that faults really happened.

* :func:`run_with_outages` makes a *port* vanish and come back: it opens the port with
  ``open_port()``, runs ``serve(port)`` on it, closes it at each outage ``(start,
  duration)`` (a PTY whose device node disappears, a TCP listener that goes away), waits,
  and opens it again - what a reader's reopening logic must survive.

Usage in another simulator::

    faults = FaultConfig(drop_rate=0.01, late_rate=0.1, late_delay=0.5, seed=7)
    port = FaultyTransport(bus.attach("slave-5"), faults)      # the slave writes through it
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from meterbridge.transports import Clock, Transport, TransportWrapper

__all__ = ["FaultConfig", "FaultStats", "FaultyTransport", "run_with_outages"]

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """What goes wrong, how often (see the module docstring). All rates are 0..1."""

    drop_rate: float = 0.0
    flip_rate: float = 0.0
    extra_rate: float = 0.0
    late_rate: float = 0.0
    late_delay: float = 0.5
    mute_rate: float = 0.0
    silent: tuple[tuple[float, float], ...] = ()
    outages: tuple[tuple[float, float], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_rate", "flip_rate", "extra_rate", "late_rate", "mute_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name} must be within 0..1, got {value!r}")
        if self.late_delay < 0:
            raise ValueError("fault late_delay must not be negative")
        for start, duration in (*self.silent, *self.outages):
            if start < 0 or duration <= 0:
                raise ValueError(f"fault window ({start}, {duration}): start >= 0 and duration > 0")

    @property
    def any(self) -> bool:
        return bool(
            self.drop_rate
            or self.flip_rate
            or self.extra_rate
            or self.late_rate
            or self.mute_rate
            or self.silent
        )

    @classmethod
    def parse(cls, text: str, *, seed: int = 0) -> FaultConfig:
        """``drop=0.01,flip=0.001,extra=0.01,late=0.1,late_delay=0.5,mute=0.05,silent=30+10,outage=60+5``.

        ``silent`` and ``outage`` take ``START+DURATION`` in seconds and may repeat.
        """
        numbers: dict[str, float] = {}
        silent: list[tuple[float, float]] = []
        outages: list[tuple[float, float]] = []
        names = {"drop": "drop_rate", "flip": "flip_rate", "extra": "extra_rate", "late": "late_rate",
                 "mute": "mute_rate", "late_delay": "late_delay"}  # fmt: skip
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault {item!r}: expected NAME=VALUE")
            try:
                if key in ("silent", "outage"):
                    start, plus, duration = value.partition("+")
                    if not plus:
                        raise ValueError
                    (silent if key == "silent" else outages).append((float(start), float(duration)))
                elif key in names:
                    numbers[names[key]] = float(value)
                else:
                    known = ", ".join([*names, "silent", "outage"])
                    raise ValueError(f"fault {key!r} is unknown; known: {known}")
            except ValueError as exc:
                if str(exc):
                    raise
                raise ValueError(
                    f"fault {item!r}: value must be a number (silent/outage: START+DURATION)"
                ) from None
        return cls(**numbers, silent=tuple(silent), outages=tuple(outages), seed=seed)


@dataclass(slots=True)
class FaultStats:
    dropped: int = 0
    flipped: int = 0
    extra: int = 0
    late: int = 0
    silenced: int = 0
    muted: int = 0
    writes: list[bytes] = field(default_factory=list, repr=False)


class FaultyTransport(TransportWrapper):
    """Damages what the wrapped device writes (see the module docstring)."""

    def __init__(self, inner: Transport, config: FaultConfig, *, keep_writes: bool = False) -> None:
        super().__init__(inner)
        self.config = config
        self.stats = FaultStats()
        self._rng = random.Random(config.seed)
        self._t0 = inner.clock.monotonic()
        self._keep = keep_writes

    def silenced_now(self) -> bool:
        t = self.clock.monotonic() - self._t0
        return any(start <= t < start + duration for start, duration in self.config.silent)

    def damage(self, data: bytes) -> bytes:
        """Apply byte-level faults to ``data`` (drop, flip, extra); deterministic for a seed."""
        cfg, rng, stats = self.config, self._rng, self.stats
        out = bytearray()
        for byte in data:
            if cfg.drop_rate and rng.random() < cfg.drop_rate:
                stats.dropped += 1
                continue
            value = byte
            if cfg.flip_rate and rng.random() < cfg.flip_rate:
                value ^= 1 << rng.randrange(8)
                stats.flipped += 1
            out.append(value)
        if cfg.extra_rate and rng.random() < cfg.extra_rate:
            out.insert(rng.randrange(len(out) + 1), rng.randrange(256))
            stats.extra += 1
        return bytes(out)

    async def write(self, data: bytes) -> None:
        cfg = self.config
        if self.silenced_now():
            self.stats.silenced += 1
            return
        if cfg.mute_rate and self._rng.random() < cfg.mute_rate:
            self.stats.muted += 1
            return
        if cfg.late_rate and self._rng.random() < cfg.late_rate:
            self.stats.late += 1
            await self.clock.sleep(cfg.late_delay)
        damaged = self.damage(bytes(data))
        if self._keep:
            self.stats.writes.append(damaged)
        if damaged:
            await self.inner.write(damaged)


async def run_with_outages(
    open_port: Callable[[], Awaitable[P]],
    close_port: Callable[[P], Awaitable[None]],
    serve: Callable[[P], Awaitable[None]],
    outages: Sequence[tuple[float, float]],
    *,
    clock: Clock,
    on_event: Callable[[str, float], None] | None = None,
) -> None:
    """Serve on a port that vanishes during each ``(start, duration)`` and comes back.

    Runs until cancelled (after the last outage the port stays up). ``on_event`` gets
    ``("down", t)`` / ``("up", t)`` with ``t`` seconds since the start.
    """
    t0 = clock.monotonic()
    windows = sorted(outages)
    port = await open_port()
    task = asyncio.ensure_future(serve(port))
    try:
        for start, duration in windows:
            wait = start - (clock.monotonic() - t0)
            if wait > 0:
                await clock.sleep(wait)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await close_port(port)
            if on_event is not None:
                on_event("down", clock.monotonic() - t0)
            await clock.sleep(duration)
            port = await open_port()
            if on_event is not None:
                on_event("up", clock.monotonic() - t0)
            task = asyncio.ensure_future(serve(port))
        await task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await close_port(port)
