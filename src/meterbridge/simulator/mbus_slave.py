"""Simulated M-Bus slaves: meter models whose values evolve, and the slave's link state.

:class:`MeterModel` produces the variable data records of an electricity, heat, water or
gas meter at a time ``t`` (seconds of simulation): counters integrate a rate that follows
a daily curve (so they only rise), instantaneous values (power, flow, temperatures,
voltages) move around their nominal values. :class:`SimulatedSlave` is the meter role of
the M-Bus codec: it answers SND_NKE, REQ_UD2 (with FCB and multi-telegram pages),
selection by secondary address (wildcards), application reset, baud-rate switch and
change of primary address, exactly as ``meterbridge.protocols.mbus`` encodes them.
Everything here is sans-IO: ``respond(request, t)`` returns the bytes to send or ``None``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from meterbridge.protocols.mbus import (
    ADDRESS_BROADCAST_NO_REPLY,
    ADDRESS_BROADCAST_REPLY,
    ADDRESS_NETWORK_LAYER,
    ApplicationReset,
    RecordSpec,
    ReqUd1,
    ReqUd2,
    Request,
    SecondaryAddress,
    SelectSecondary,
    SendUserData,
    SetBaudRate,
    SetPrimaryAddress,
    SndNke,
    encode_variable_response,
)
from meterbridge.protocols.mbus.tables import MEDIUM_CODE, manufacturer_id

__all__ = ["KINDS", "MeterModel", "SimulatedSlave", "make_slave"]

ACK: Final = b"\xe5"
KINDS: Final = ("electricity", "heat", "water", "gas")
_MANUFACTURERS: Final[dict[str, tuple[str, ...]]] = {
    "electricity": ("ABB", "SBC", "EMH", "LGB"),
    "heat": ("KAM", "SEN", "ELS", "ZRI"),
    "water": ("ACW", "SEN", "ZRI", "DME"),
    "gas": ("ELS", "LGB", "ITR", "PIP"),
}
_MEDIUM: Final[dict[str, int]] = {
    "electricity": MEDIUM_CODE["electricity"],
    "heat": MEDIUM_CODE["heat_outlet"],
    "water": MEDIUM_CODE["water"],
    "gas": MEDIUM_CODE["gas"],
}
_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)  # the meters' clocks by default: telegrams reproducible
PAGE_BYTES: Final = 180  # records per telegram are cut at this size (a long frame holds 252)


@dataclass(slots=True)
class MeterModel:
    """Values of one meter as functions of time (deterministic for a seed)."""

    kind: str
    seed: int
    epoch: datetime = _EPOCH
    history_months: int = 0  # > 0: monthly stored values (a multi-telegram meter)
    _base: float = 0.0
    _rate: float = 0.0
    _phase: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"meter kind must be one of {KINDS}, got {self.kind!r}")
        rng = random.Random(self.seed)
        self._phase = rng.random() * 2 * math.pi
        if self.kind == "electricity":
            self._base, self._rate = rng.uniform(1e6, 5e7), rng.uniform(200, 3000)  # Wh, W
        elif self.kind == "heat":
            self._base, self._rate = rng.uniform(1e4, 3e5), rng.uniform(1, 15)  # kWh, kW
        elif self.kind == "water":
            self._base, self._rate = rng.uniform(1e4, 9e5), rng.uniform(5, 80)  # l, l/h
        else:
            self._base, self._rate = rng.uniform(1e5, 9e6), rng.uniform(10, 900)  # l (gas), l/h

    def level(self, t: float) -> float:
        """Load factor 0.2..1.8 following a daily curve."""
        return 1.0 + 0.8 * math.sin(2 * math.pi * t / 86400 + self._phase)

    def counter(self, t: float) -> int:
        """Integral of ``rate * level``: rises monotonically (rate in units per hour)."""
        day = 86400 / (2 * math.pi)
        integral = t - 0.8 * day * (math.cos(2 * math.pi * t / 86400 + self._phase) - math.cos(self._phase))
        return int(self._base + self._rate * integral / 3600)

    def clock(self, t: float) -> datetime:
        return (self.epoch + timedelta(seconds=t)).replace(second=0, microsecond=0, tzinfo=None)

    def records(self, t: float, fabrication: int) -> list[RecordSpec]:
        now = self.clock(t)
        level = self.level(t)
        total = self.counter(t)
        specs: list[RecordSpec] = [RecordSpec(0x0C, 0x78, fabrication)]
        if self.kind == "electricity":
            power = round(self._rate * level)
            specs += [
                RecordSpec(0x04, 0x03, total),  # energy, Wh
                RecordSpec(0x84, 0x03, total * 6 // 10, tariff=1),  # tariff 1
                RecordSpec(0x84, 0x03, total - total * 6 // 10, tariff=2),  # tariff 2
                RecordSpec(0x04, 0x2B, power),  # power, W
            ]
            for phase in range(3):
                wobble = math.sin(t / 60 + phase + self._phase)
                specs.append(
                    RecordSpec(0x02, 0x7D, round(2300 + 40 * wobble), vife=(0x48,), subunit=phase + 1)
                )
                specs.append(
                    RecordSpec(
                        0x02,
                        0x7D,
                        round(power / 3 / 2.3 * (1 + 0.1 * wobble) / 10),
                        vife=(0x5A,),
                        subunit=phase + 1,
                    )
                )
        elif self.kind == "heat":
            flow = max(0.0, 0.6 * level)
            flow_temp = 7000 + round(500 * level)
            return_temp = 4500 + round(300 * level)
            specs += [
                RecordSpec(0x04, 0x06, total),  # energy, kWh
                RecordSpec(0x04, 0x13, self.counter(t) * 40),  # volume, l
                RecordSpec(0x04, 0x2B, round(self._rate * level * 1000)),  # power, W
                RecordSpec(0x04, 0x3B, round(flow * 1000)),  # flow, l/h
                RecordSpec(0x02, 0x59, flow_temp),  # 0.01 degC
                RecordSpec(0x02, 0x5D, return_temp),
                RecordSpec(0x02, 0x61, flow_temp - return_temp),  # 0.01 K
                RecordSpec(0x04, 0x22, int(t // 3600)),  # on time, hours
            ]
        elif self.kind == "water":
            specs += [
                RecordSpec(0x04, 0x13, total),  # volume, l
                RecordSpec(0x02, 0x3B, round(self._rate * level)),  # flow, l/h
                RecordSpec(0x01, 0x7D, 0, vife=(0x17,)),  # error flags
            ]
        else:
            specs += [
                RecordSpec(0x0C, 0x13, total),  # volume, l (BCD)
                RecordSpec(0x02, 0x3B, round(self._rate * level)),
                RecordSpec(0x02, 0x65, 1200 + round(300 * math.sin(t / 3600 + self._phase))),  # ext temp 0.01
            ]
        specs.append(RecordSpec(0x04, 0x6D, now))
        due = now.replace(day=1, hour=0, minute=0)
        due_t = (due - self.epoch.replace(tzinfo=None)).total_seconds()
        first_vif = specs[1].vif
        assert first_vif is not None
        specs.append(RecordSpec(0x42, 0x6C, due.date()))
        specs.append(
            RecordSpec(
                specs[1].data_field | 0x40, first_vif, self.counter(max(0.0, due_t)) if due_t > 0 else 0
            )
        )
        for month in range(1, self.history_months + 1):
            when = due - timedelta(days=31 * month)
            when = when.replace(day=1)
            wt = max(0.0, (when - self.epoch.replace(tzinfo=None)).total_seconds())
            specs.append(RecordSpec(0x02, 0x6C, when.date(), storage=month + 1))
            specs.append(
                RecordSpec(
                    specs[1].data_field, first_vif, self.counter(wt) if wt > 0 else 0, storage=month + 1
                )
            )
        return specs


@dataclass(slots=True)
class SimulatedSlave:
    """One slave on the virtual bus (sans-IO link and application state)."""

    primary: int
    secondary: SecondaryAddress
    model: MeterModel
    baud: int = 2400
    reply_delay_bits: float = 22.0  # after the request's last stop bit (window: 11..330 bits + 50 ms)
    silent: bool = False  # a dead meter: never answers
    status: int = 0
    access_number: int = 0
    selected: bool = False
    _expected_fcb: bool = True
    _page: int = 0
    _last: bytes | None = None
    requests: int = field(default=0)

    @property
    def label(self) -> str:
        return f"{self.primary}/{self.secondary}"

    def addressed(self, address: int) -> bool:
        if address == ADDRESS_NETWORK_LAYER:
            return self.selected
        return address == self.primary or address in (ADDRESS_BROADCAST_REPLY, ADDRESS_BROADCAST_NO_REPLY)

    def pages(self, t: float) -> list[bytes]:
        """The telegram(s) of a readout at time ``t`` (more than one: DIF 0x1F on all but the last)."""
        ident = self.secondary.identification
        specs = self.model.records(t, int(ident) if ident.isdigit() else int(ident, 16))
        chunks: list[list[RecordSpec]] = [[]]
        size = 0
        from meterbridge.protocols.mbus import encode_record

        for spec in specs:
            n = len(encode_record(spec))
            if size + n > PAGE_BYTES and chunks[-1]:
                chunks.append([])
                size = 0
            chunks[-1].append(spec)
            size += n
        frames = []
        for i, chunk in enumerate(chunks):
            frames.append(
                encode_variable_response(
                    self.primary,
                    chunk,
                    identification=self.secondary.identification,
                    manufacturer=self.secondary.manufacturer,
                    version=self.secondary.version,
                    medium=self.secondary.medium,
                    access_number=(self.access_number + i) & 0xFF,
                    status=self.status,
                    more_records_follow=i < len(chunks) - 1,
                ).encode()
            )
        return frames

    def reset_link(self) -> None:
        self._expected_fcb = True
        self._page = 0
        self._last = None

    def respond(self, request: Request, t: float) -> bytes | None:
        """Bytes this slave sends in answer to ``request`` at simulation time ``t`` (or None)."""
        if self.silent:
            return None
        if isinstance(request, SelectSecondary):
            self.selected = request.matches(self.secondary)
            return ACK if self.selected else None
        address = request.address
        if not self.addressed(address):
            return None
        self.requests += 1
        reply = self._answer(request, t)
        if address == ADDRESS_BROADCAST_NO_REPLY:
            return None
        return reply

    def _answer(self, request: Request, t: float) -> bytes | None:
        if isinstance(request, SndNke):
            self.reset_link()
            if request.address == ADDRESS_NETWORK_LAYER:
                self.selected = False  # SND_NKE to 253 deselects (EN 13757-2)
            return ACK
        if isinstance(request, ReqUd2):
            if request.fcv and self._last is not None and request.fcb != self._expected_fcb:
                return self._last  # FCB not toggled: the master missed our last telegram
            pages = self.pages(t)
            index = self._page if self._page < len(pages) else 0
            self._page = index + 1 if index + 1 < len(pages) else 0
            self._last = pages[index]
            if request.fcv:
                self._expected_fcb = not request.fcb
            self.access_number = (self.access_number + 1) & 0xFF
            return self._last
        if isinstance(request, ReqUd1):
            return ACK  # no alarm data
        if isinstance(request, SetPrimaryAddress):
            self.primary = request.new_address
            return ACK
        if isinstance(request, ApplicationReset):
            self.reset_link()  # the readout starts again with the first telegram
            return ACK
        if isinstance(request, SetBaudRate):
            return ACK  # the bus switches this slave's baud after the acknowledgement
        if isinstance(request, SendUserData):
            return ACK
        return None  # pragma: no cover - every request type is handled above


def make_slave(
    primary: int,
    identification: int,
    kind: str,
    *,
    seed: int,
    history_months: int = 0,
    reply_delay_bits: float | None = None,
    epoch: datetime | None = None,
) -> SimulatedSlave:
    """A slave with a plausible manufacturer, version and reply delay for ``kind``; its clock reads
    ``epoch`` (default 2026-01-01 00:00 UTC, for reproducible telegrams) when the bus starts serving."""
    rng = random.Random(seed * 1000003 + identification)
    manufacturer = rng.choice(_MANUFACTURERS[kind])
    secondary = SecondaryAddress(
        f"{identification:08d}", manufacturer_id(manufacturer), rng.randrange(1, 0x40), _MEDIUM[kind]
    )
    delay = reply_delay_bits if reply_delay_bits is not None else float(rng.randrange(11, 120))
    return SimulatedSlave(
        primary,
        secondary,
        MeterModel(kind, seed=rng.randrange(2**31), epoch=epoch or _EPOCH, history_months=history_months),
        reply_delay_bits=delay,
    )
