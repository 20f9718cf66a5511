"""A simulated installation read through the real protocol stack: virtual E450 meters
(``meterbridge.simulator.e450.E450Simulator``) answering IEC 62056-21 on in-memory lines, read by the
optical driver (``meterbridge.drivers.optical.OpticalReader``: sign-on, baud switch, readout with BCC,
retries).

Round-trip times and retries are the driver's own. Installation time runs ahead of the wall clock when
the checklist waits (the soak), by moving the simulators' clock forward; the reads themselves take their
real time.

Faults (``OpticalSimulatedInstallation(faults={"meter-id": {"silent"}})`` or ``inject()``):

``silent``   the meter stops answering (its port is not served)
``garbled``  0.1 % of the bytes it sends have a bit flipped (BCC errors: the driver retries)
``slow``     every reply comes 0.6 s late (past the driver's 0.5 s response timeout)
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from meterbridge.commissioning.model import PollOutcome
from meterbridge.drivers.optical import OpticalReader
from meterbridge.errors import MeterbridgeError
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.simulator.faults import FaultConfig
from meterbridge.sinks.store import MeterInfo
from meterbridge.transports import IEC_SIGN_ON, RealClock, Transport, pipe_pair

__all__ = ["EXPECTED_READOUT", "OPTICAL_FAULTS", "OpticalSimulatedInstallation", "ShiftedClock"]

OPTICAL_FAULTS: Final = ("silent", "garbled", "slow")
RESPONSE_TIMEOUT_S: Final = 0.5
RETRIES: Final = 2

#: The catalogue registers an E450 data readout carries (the guide's readout list).
EXPECTED_READOUT: Final = tuple(
    f"1-0:{c}.255"
    for c in (
        "1.8.0",
        "1.8.1",
        "1.8.2",
        "2.8.0",
        "1.7.0",
        "2.7.0",
        "32.7.0",
        "52.7.0",
        "72.7.0",
        "31.7.0",
        "51.7.0",
        "71.7.0",
        "14.7.0",
        "13.7.0",
    )
)


class ShiftedClock(RealClock):
    """The wall clock, moved ahead by ``advance()``: installation time for the simulators (timeouts keep
    running on the real monotonic clock)."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return super().now() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class _Meter:
    id: str
    sim: E450Simulator
    meter_end: Transport
    reader: OpticalReader
    faults: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class OpticalSimulatedInstallation:
    """``count`` virtual E450 meters, each on its own optical line (see the module docstring)."""

    can_inject = True

    def __init__(
        self,
        count: int = 2,
        *,
        interval: float = 60.0,
        faults: dict[str, set[str]] | None = None,
        seed: int = 1,
    ) -> None:
        self.name = f"simulated installation ({count} virtual E450 read through the optical driver)"
        self.interval = interval
        self.clock = ShiftedClock()
        self._meters: dict[str, _Meter] = {}
        for i in range(count):
            meter_id = f"e450-optical-{i + 1}"
            sim = E450Simulator(clock=self.clock, seed=seed + i, reaction_time=0.01)
            meter_end, reader_end = pipe_pair(
                (f"{meter_id}:meter", f"{meter_id}:reader"), clock=self.clock, line=IEC_SIGN_ON
            )
            reader = OpticalReader(reader_end, response_timeout=RESPONSE_TIMEOUT_S, retries=RETRIES)
            self._meters[meter_id] = _Meter(meter_id, sim, meter_end, reader)
        for meter_id, names in (faults or {}).items():
            meter = self._meter(meter_id)
            for fault in names:
                _check(fault)
            meter.faults |= set(names)

    def _meter(self, meter_id: str) -> _Meter:
        try:
            return self._meters[meter_id]
        except KeyError:
            raise KeyError(f"no simulated meter {meter_id!r}; there are {', '.join(self._meters)}") from None

    def _serve(self, meter: _Meter) -> None:
        """(Re)start the meter's side of the line with its current faults."""
        self._stop(meter)
        if "silent" in meter.faults:
            return
        config = FaultConfig(
            flip_rate=0.001 if "garbled" in meter.faults else 0.0,
            late_rate=1.0 if "slow" in meter.faults else 0.0,
            late_delay=0.6,
            seed=sum(map(ord, meter.id)),
        )
        meter.sim.faults = config if config.any else None
        meter.task = asyncio.get_running_loop().create_task(meter.sim.serve_optical(meter.meter_end))

    @staticmethod
    def _stop(meter: _Meter) -> None:
        if meter.task is not None:
            meter.task.cancel()
            meter.task = None

    async def aclose(self) -> None:
        for meter in self._meters.values():
            task = meter.task
            self._stop(meter)
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # ------------------------------------------------------------ Installation

    def meters(self) -> list[MeterInfo]:
        return [
            MeterInfo(
                id=m.id,
                name=f"Virtual E450 {m.id.rsplit('-', 1)[1]} (optical)",
                kind="electricity",
                protocol="optical",
                address=f"memory://{m.id}",
                serial=m.sim.model.serial_number,
                manufacturer="LGZ",
                firmware=m.sim.model.firmware_version,
            )
            for m in self._meters.values()
        ]

    def parameters(self) -> dict[str, dict[str, Any]]:
        return {
            m.id: {
                "interval_s": self.interval,
                "response_timeout_s": RESPONSE_TIMEOUT_S,
                "retries": RETRIES,
                "baud": "300 sign-on, 9600 readout",
                "reply_limit_s": 2.0,  # a whole readout (sign-on, identification, data) on this line
            }
            for m in self._meters.values()
        }

    def expected(self, meter_id: str) -> list[str]:
        self._meter(meter_id)
        return list(EXPECTED_READOUT)

    def now(self) -> datetime:
        return self.clock.now()

    async def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await asyncio.sleep(0)

    async def inject(self, meter_id: str, fault: str, active: bool) -> None:
        _check(fault)
        meter = self._meter(meter_id)
        (meter.faults.add if active else meter.faults.discard)(fault)
        if meter.task is not None or active is False:
            self._serve(meter)

    def reference(self) -> list[dict[str, Any]]:
        """The exact energy integrals now, in kWh (the readout's unit): a calibrated reference meter."""
        out = []
        for meter in self._meters.values():
            meter.sim.model.advance(self.clock.now())
            for code, wh in meter.sim.model.energies().items():
                if code.c == 1 and code.d == 8:
                    out.append(
                        {"meter_id": meter.id, "key": str(code), "value": round(wh / 1000, 6), "class": "B"}
                    )
        return out

    def config_file(self, scratch: Path) -> Path:
        lines = [
            "# simulated optical installation written by meterbridge check",
            "name: simulated-optical",
            "meters:",
        ]
        for m in self._meters.values():
            lines += [
                f"  - id: {m.id}",
                "    protocol: optical",
                f"    transport: pty:///tmp/meterbridge-{m.id}",
                f"    interval: {self.interval:g}",
                f"    timeout: {RESPONSE_TIMEOUT_S * (RETRIES + 2):g}",
            ]
        path = scratch / "simulated-optical.yaml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    async def read(self, meter_id: str) -> PollOutcome:
        meter = self._meter(meter_id)
        if meter.task is None and "silent" not in meter.faults:
            self._serve(meter)
        at = self.clock.now()
        started = self.clock.monotonic()
        try:
            result = await meter.reader.readout()
        except (MeterbridgeError, OSError, TimeoutError) as exc:
            rtt = self.clock.monotonic() - started
            return PollOutcome(meter_id, at, (), rtt, RETRIES, f"{type(exc).__name__}: {exc}")
        readings = tuple(replace(r, meter_id=meter_id, timestamp=at) for r in result.readings)
        return PollOutcome(meter_id, at, readings, result.duration, len(result.attempts))


def _check(fault: str) -> None:
    if fault not in OPTICAL_FAULTS:
        raise ValueError(f"fault {fault!r} is not one of {', '.join(OPTICAL_FAULTS)}")
