"""A simulated installation: virtual E450 meters (``meterbridge.simulator.E450Model``) on a virtual clock,
with faults that a commissioning run must find.

The meters are read at the register level (the model's snapshot turned into readings with the catalogue's
units), not through a protocol driver, and time is virtual: a soak of a day takes a fraction of a second.

Faults (``SimulatedInstallation(faults={"meter-id": {"silent", ...}})``, or ``inject()`` during a run):

``silent``      the meter does not answer (every attempt times out)
``flaky``       one read in four fails after all retries
``slow``        answers after 0.4 s (beyond the M-Bus reply window of ~0.19 s at 2400 baud)
``scaler``      voltages and currents arrive without their scaler (x100: "106 A instead of 1.06 A")
``drift``       energy registers read 2 % high (a meter outside its accuracy class)
``counter_glitch`` every 20th answer carries the import energy counters as 0 (a garbled value)
``no_power``    the active power registers are missing from the answer
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from meterbridge.commissioning.model import PollOutcome
from meterbridge.obis import ObisCode, lookup
from meterbridge.readings import Reading
from meterbridge.simulator.e450_model import E450Model
from meterbridge.sinks.store import MeterInfo

__all__ = ["FAULTS", "SimulatedInstallation", "SimulatedMeter"]

FAULTS: Final = ("silent", "flaky", "slow", "scaler", "drift", "counter_glitch", "no_power")
_RETRIES: Final = 2
_TIMEOUT_S: Final = 0.5
_SCALED: Final = frozenset(
    ObisCode.parse(c) for c in ("32.7.0", "52.7.0", "72.7.0", "31.7.0", "51.7.0", "71.7.0")
)
_POWERS: Final = frozenset(ObisCode.parse(c) for c in ("1.7.0", "2.7.0", "16.7.0"))
_IMPORT: Final = frozenset(ObisCode.parse(c) for c in ("1.8.0", "1.8.1", "1.8.2"))


@dataclass
class SimulatedMeter:
    id: str
    model: E450Model
    address: str
    faults: set[str] = field(default_factory=set)
    reads: int = 0


class SimulatedInstallation:
    """``count`` virtual E450 meters on one virtual M-Bus-like line; see the module docstring."""

    can_inject = True

    def __init__(
        self,
        count: int = 3,
        *,
        start: datetime | None = None,
        interval: float = 60.0,
        faults: dict[str, set[str]] | None = None,
        seed: int = 1,
    ) -> None:
        self.name = f"simulated installation ({count} virtual E450)"
        self._now = (start or datetime(2026, 1, 15, tzinfo=UTC)).astimezone(UTC)
        self.interval = interval
        self._meters = {
            f"sim-e450-{i + 1}": SimulatedMeter(
                f"sim-e450-{i + 1}",
                E450Model(seed=seed + i, start=self._now),
                f"sim://line0#{i + 1}",
            )
            for i in range(count)
        }
        for meter_id, names in (faults or {}).items():
            for fault in names:
                self._meter(meter_id)
                self._check_fault(fault)
            self._meters[meter_id].faults |= set(names)

    def _meter(self, meter_id: str) -> SimulatedMeter:
        try:
            return self._meters[meter_id]
        except KeyError:
            raise KeyError(f"no simulated meter {meter_id!r}; there are {', '.join(self._meters)}") from None

    @staticmethod
    def _check_fault(fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"fault {fault!r} is not one of {', '.join(FAULTS)}")

    def meters(self) -> list[MeterInfo]:
        return [
            MeterInfo(
                id=m.id,
                name=f"Virtual E450 {m.id[-1]}",
                kind="electricity",
                protocol="simulated",
                address=m.address,
                serial=m.model.serial_number,
                manufacturer="LGZ",
                firmware=m.model.firmware_version,
            )
            for m in self._meters.values()
        ]

    def parameters(self) -> dict[str, dict[str, Any]]:
        return {
            m.id: {"interval_s": self.interval, "timeout_s": _TIMEOUT_S, "retries": _RETRIES, "baud": 2400}
            for m in self._meters.values()
        }

    def expected(self, meter_id: str) -> list[str]:
        meter = self._meter(meter_id)
        snap = meter.model.snapshot(self._now)
        return sorted(str(code) for code, value in snap.values.items() if _numeric(value))

    def now(self) -> datetime:
        return self._now

    async def wait(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    async def inject(self, meter_id: str, fault: str, active: bool) -> None:
        self._check_fault(fault)
        meter = self._meter(meter_id)
        if active:
            meter.faults.add(fault)
        else:
            meter.faults.discard(fault)

    def reference(self) -> list[dict[str, Any]]:
        """Reference values of the energy registers now (the exact integrals: a calibrated reference meter)."""
        out = []
        for meter in self._meters.values():
            meter.model.advance(self._now)
            for code, value in meter.model.energies().items():
                if code in _IMPORT:
                    out.append(
                        {"meter_id": meter.id, "key": str(code), "value": round(value, 3), "class": "B"}
                    )
        return out

    def config_file(self, scratch: Path) -> Path:
        """A gateway configuration for these meters as ``meterbridge simulate e450 --pty`` serves them."""
        lines = ["# simulated installation written by meterbridge check", "name: simulated", "meters:"]
        for m in self._meters.values():
            lines += [
                f"  - id: {m.id}",
                f"    name: Virtual E450 {m.id.rsplit('-', 1)[1]} (seed {m.model.seed})",
                "    protocol: optical",
                f"    transport: pty:///tmp/meterbridge-{m.id}",
                f"    interval: {self.interval:g}",
            ]
        path = scratch / "simulated.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    async def read(self, meter_id: str) -> PollOutcome:
        meter = self._meter(meter_id)
        meter.reads += 1
        at = self._now
        await asyncio.sleep(0)
        if "silent" in meter.faults or ("flaky" in meter.faults and meter.reads % 4 == 0):
            return PollOutcome(meter_id, at, (), _TIMEOUT_S, _RETRIES, "no answer within the reply window")
        rtt = 0.4 if "slow" in meter.faults else 0.05 + (meter.reads % 5) * 0.01
        snap = meter.model.snapshot(at)
        glitch = "counter_glitch" in meter.faults and meter.reads % 20 == 0
        readings = []
        for code, value in snap.values.items():
            if not _numeric(value) or ("no_power" in meter.faults and code in _POWERS):
                continue
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
            if "scaler" in meter.faults and code in _SCALED:
                number *= 100
            if code in _IMPORT:
                if glitch:
                    number = Decimal(0)
                if "drift" in meter.faults:
                    number = number * Decimal("1.02")
            quantity = lookup(code)
            unit = quantity.unit if quantity is not None else None
            readings.append(
                Reading(meter_id, code, number, unit, at, name=quantity.name if quantity else None)
            )
        return PollOutcome(meter_id, at, tuple(readings), rtt, 0)


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
