"""The register model of a virtual Landis+Gyr E450: a household that evolves with time.

No protocol and no I/O here: :class:`E450Model` is a pure function of (seed, start, time).

* **Load curve.** A household profile by local hour (night base, morning and evening peaks)
  plus appliances (kettle, oven, washing machine, ...) that switch on at seeded random
  times on seeded phases; optional PV (``pv_peak_w``) that follows the sun and clouds and
  makes the meter export when it exceeds the load.
* **Energies integrate the powers** slot by slot (``SLOT`` seconds, the power is constant in
  a slot), so every energy register only rises; the tariff registers (T1 = day, T2 =
  night and weekends, :class:`TariffSchedule`) receive what flows while their tariff is
  active.
* **Voltages** wander around nominal (smooth seeded noise) and drop with the phase current;
  **frequency** wanders around 50 Hz; **power factor** rises with the load; **THD** of
  current is high at low load (electronics), THD of voltage small.
* **Disturbances** (:class:`Disturbance`: voltage sag or swell, frequency excursion, high
  voltage THD, low power factor) override the physics during their window so that quality
  checks have something to find.
* **Load profile**: every ``profile_period`` the clock and the energy registers are captured
  (COSEM Profile Generic 1-0:99.1.0.255), up to ``profile_depth`` rows.

Reproducible: the same seed, start and time give the same values whatever the step sizes
(noise is a hash of (seed, channel, slot), not a stateful generator). ``advance(t)`` only
moves forward; asking for an earlier time is a ``ValueError``.

Values in :class:`Snapshot` are physical (W, Wh, V, A, Hz, %, power factor as a fraction);
the COSEM side (``e450_cosem``) applies scalers. Register keys are the OBIS codes of
``meterbridge.obis.CATALOGUE``.
"""

from __future__ import annotations

import cmath
import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo

from meterbridge.obis import ObisCode

__all__ = [
    "DISTURBANCE_KINDS",
    "ENERGY_REGISTERS",
    "PROFILE_OBIS",
    "PROFILE_REGISTERS",
    "SLOT",
    "Disturbance",
    "E450Model",
    "ModelConfig",
    "ProfileEntry",
    "Snapshot",
    "TariffSchedule",
    "disturbances_from",
]

SLOT: Final = 10.0  # seconds of constant power in the integration

DisturbanceKind = Literal["voltage_sag", "voltage_swell", "frequency", "thd", "power_factor"]
DISTURBANCE_KINDS: Final = ("voltage_sag", "voltage_swell", "frequency", "thd", "power_factor")

_O = ObisCode.parse
E_IMPORT, E_IMPORT_T1, E_IMPORT_T2 = _O("1-0:1.8.0"), _O("1-0:1.8.1"), _O("1-0:1.8.2")
E_EXPORT, E_EXPORT_T1, E_EXPORT_T2 = _O("1-0:2.8.0"), _O("1-0:2.8.1"), _O("1-0:2.8.2")
Q_IMPORT, Q_EXPORT, S_IMPORT, E_ABS = _O("1-0:3.8.0"), _O("1-0:4.8.0"), _O("1-0:9.8.0"), _O("1-0:15.8.0")
ENERGY_REGISTERS: Final = (
    E_IMPORT,
    E_IMPORT_T1,
    E_IMPORT_T2,
    E_EXPORT,
    E_EXPORT_T1,
    E_EXPORT_T2,
    Q_IMPORT,
    Q_EXPORT,
    S_IMPORT,
    E_ABS,
)
PROFILE_OBIS: Final = _O("1-0:99.1.0.255")
PROFILE_REGISTERS: Final = (E_IMPORT, E_EXPORT, Q_IMPORT, Q_EXPORT)
CLOCK: Final = _O("0-0:1.0.0.255")

# Household profile: mean load in W by local hour 0..23
_HOURLY: Final = (
    180, 160, 150, 150, 150, 170, 320, 650, 700, 450, 380, 420,
    520, 480, 400, 380, 450, 700, 1000, 1100, 950, 700, 450, 260,
)  # fmt: skip
# Appliances: (name, W, minimum minutes, maximum minutes)
_APPLIANCES: Final = (
    ("kettle", 2000.0, 2, 4),
    ("oven", 1800.0, 20, 60),
    ("washing machine", 2100.0, 40, 90),
    ("dishwasher", 1900.0, 30, 70),
    ("heat pump", 2600.0, 30, 120),
    ("hair dryer", 1600.0, 3, 10),
)
_EVENT_BLOCK: Final = 300.0  # an appliance may start at each 5-minute block
_MAX_EVENT: Final = 120 * 60.0
_PHASES: Final = (0, 1, 2)
_ROT: Final = (1, cmath.exp(-2j * math.pi / 3), cmath.exp(2j * math.pi / 3))

_M64: Final = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64 finaliser: a fast, well-spread 64-bit hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


@dataclass(frozen=True, slots=True)
class TariffSchedule:
    """T1 (day) from ``day_start`` to ``day_end`` local time on working days, else T2 (night)."""

    day_start: time = time(6, 0)
    day_end: time = time(22, 0)
    weekend_is_night: bool = True
    timezone: str = "Europe/Zurich"

    def tariff_at(self, at: datetime) -> int:
        local = at.astimezone(ZoneInfo(self.timezone))
        if self.weekend_is_night and local.weekday() >= 5:
            return 2
        return 1 if self.day_start <= local.time() < self.day_end else 2

    def next_switch(self, at: datetime) -> datetime:
        """The first instant after ``at`` (to the minute) when the tariff changes."""
        current = self.tariff_at(at)
        probe = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(8 * 24 * 60):
            if self.tariff_at(probe) != current:
                return probe
            probe += timedelta(minutes=1)
        raise ValueError("tariff schedule never switches")


@dataclass(frozen=True, slots=True)
class Disturbance:
    """A grid disturbance from ``start`` (offset from the model's start) for ``duration``.

    ``magnitude``: voltage_sag / voltage_swell: fraction of nominal (0.3 = 30 % sag);
    frequency: deviation in Hz (-1.2 = 48.8 Hz); thd: voltage THD in %; power_factor: the
    power factor of every phase (0.6). ``phases``: 1, 2, 3 (all by default).
    """

    kind: DisturbanceKind
    start: timedelta
    duration: timedelta
    magnitude: float
    phases: tuple[int, ...] = (1, 2, 3)

    def __post_init__(self) -> None:
        if self.kind not in DISTURBANCE_KINDS:
            raise ValueError(f"disturbance kind {self.kind!r}: one of {', '.join(DISTURBANCE_KINDS)}")
        if self.duration <= timedelta(0):
            raise ValueError("disturbance duration must be positive")
        if not self.phases or any(p not in (1, 2, 3) for p in self.phases):
            raise ValueError(f"disturbance phases {self.phases!r}: a subset of 1, 2, 3")
        if self.kind in ("voltage_sag", "voltage_swell") and not 0 < self.magnitude < 1:
            raise ValueError("voltage sag/swell magnitude is a fraction between 0 and 1")
        if self.kind == "power_factor" and not 0 < self.magnitude <= 1:
            raise ValueError("power factor disturbance magnitude must be in (0, 1]")
        if self.kind == "thd" and not 0 <= self.magnitude <= 100:
            raise ValueError("THD disturbance magnitude is a percentage 0-100")

    @classmethod
    def parse(cls, text: str) -> Disturbance:
        """``KIND:START_S:DURATION_S:MAGNITUDE[:PHASES]``, e.g. ``voltage_sag:3600:120:0.3:1``."""
        parts = text.split(":")
        if len(parts) not in (4, 5):
            raise ValueError(
                f"disturbance {text!r}: expected KIND:START_S:DURATION_S:MAGNITUDE[:PHASES], "
                "e.g. voltage_sag:3600:120:0.3:1"
            )
        try:
            start, duration, magnitude = float(parts[1]), float(parts[2]), float(parts[3])
        except ValueError:
            raise ValueError(f"disturbance {text!r}: start, duration and magnitude must be numbers") from None
        phases = tuple(int(c) for c in parts[4]) if len(parts) == 5 and parts[4].isdigit() else (1, 2, 3)
        if len(parts) == 5 and not parts[4].isdigit():
            raise ValueError(f"disturbance {text!r}: phases are digits 1-3, e.g. 13")
        return cls(parts[0], timedelta(seconds=start), timedelta(seconds=duration), magnitude, phases)  # type: ignore[arg-type]

    def active(self, offset: float) -> bool:
        start = self.start.total_seconds()
        return start <= offset < start + self.duration.total_seconds()


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """What kind of installation the virtual meter measures."""

    nominal_voltage: float = 230.0
    nominal_frequency: float = 50.0
    base_load_scale: float = 1.0
    appliance_rate: float = 0.035  # probability that an appliance starts in a 5-minute block
    pv_peak_w: float = 0.0
    line_resistance: float = 0.25  # ohm: voltage drop per ampere
    tariffs: TariffSchedule = field(default_factory=TariffSchedule)
    profile_period: timedelta = timedelta(minutes=15)
    profile_depth: int = 96 * 10
    disturbances: tuple[Disturbance, ...] = ()
    timezone: str = "Europe/Zurich"


@dataclass(frozen=True, slots=True)
class _Electrical:
    p: tuple[float, float, float]  # net active power per phase (W, + import)
    q: tuple[float, float, float]  # reactive power per phase (var, + inductive)
    v: tuple[float, float, float]
    pf: tuple[float, float, float]
    thd_v: tuple[float, float, float]
    thd_i: tuple[float, float, float]
    frequency: float


@dataclass(frozen=True, slots=True)
class ProfileEntry:
    """One captured row of the load profile."""

    at: datetime
    values: tuple[int, ...]  # raw Wh / varh of PROFILE_REGISTERS
    status: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """All register values at ``at`` (physical units; energies in Wh, floor of the integral)."""

    at: datetime
    values: Mapping[ObisCode, float | int | str | datetime]
    tariff: int
    active_disturbances: tuple[Disturbance, ...]

    def __getitem__(self, code: ObisCode | str) -> float | int | str | datetime:
        return self.values[code if isinstance(code, ObisCode) else ObisCode.parse(code)]


class E450Model:
    """See the module docstring. ``E450Model(seed=1, start=...)``; ``advance(t)``; ``snapshot()``."""

    def __init__(
        self,
        *,
        seed: int = 0,
        start: datetime,
        config: ModelConfig | None = None,
        serial_number: str | None = None,
        initial_energy_wh: float | None = None,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("E450Model: start must be an aware datetime")
        self.seed = seed
        self.config = config or ModelConfig()
        self.start = start.astimezone(UTC)
        self._tz: tzinfo = ZoneInfo(self.config.timezone)
        self._epoch = self.start.timestamp()
        self._offsets: dict[int, float] = {}
        self._tariff_cache: dict[int, int] = {}
        self._events: dict[int, tuple[float, float, float, int] | None] = {}
        self._seed_hash = _mix(seed & _M64)
        digits = str(_mix(self._seed_hash ^ 0x5E1A1) % 10**8).zfill(8)
        self.serial_number = serial_number or digits
        self.logical_device_name = f"LGZ10{(int(self.serial_number) * 7919) % 10**11:011d}"
        self.equipment_id = f"3{self.serial_number[:6]}"
        self.firmware_version = "E450 B31 v1.6"
        base = initial_energy_wh if initial_energy_wh is not None else 1_000_000 + self._u(1, 0) * 9_000_000
        self._energy: dict[ObisCode, float] = dict.fromkeys(ENERGY_REGISTERS, 0.0)
        day_share = 0.6
        self._energy[E_IMPORT] = base
        self._energy[E_IMPORT_T1] = base * day_share
        self._energy[E_IMPORT_T2] = base - base * day_share
        self._energy[Q_IMPORT] = base * 0.18
        self._energy[Q_EXPORT] = base * 0.02
        self._energy[S_IMPORT] = base * 1.05
        self._energy[E_ABS] = base
        self._t = 0.0  # seconds since start, integrated up to here
        self.profile: deque[ProfileEntry] = deque(maxlen=self.config.profile_depth)
        self._next_capture = self._first_capture()

    # ------------------------------------------------------------------ noise
    def _u(self, channel: int, index: int) -> float:
        """Uniform [0, 1) from (seed, channel, index)."""
        return _mix(_mix(self._seed_hash ^ (channel * 0x9E3779B1)) ^ (index & _M64)) / 2.0**64

    def _smooth(self, channel: int, t: float, period: float) -> float:
        """Smooth noise in [-1, 1]: cosine interpolation of per-period random values."""
        k = math.floor(t / period)
        frac = t / period - k
        a = self._u(channel, k) * 2 - 1
        b = self._u(channel, k + 1) * 2 - 1
        w = (1 - math.cos(math.pi * frac)) / 2
        return a + (b - a) * w

    # ------------------------------------------------------------------ physics
    def _utc_offset(self, t: float) -> float:
        """Seconds of the local UTC offset at ``t`` (cached per hour; DST switches on the hour)."""
        hour = math.floor(t / 3600)
        off = self._offsets.get(hour)
        if off is None:
            at = self.start + timedelta(seconds=hour * 3600)
            delta = at.astimezone(self._tz).utcoffset()
            off = delta.total_seconds() if delta is not None else 0.0
            if len(self._offsets) > 4096:
                self._offsets.clear()
            self._offsets[hour] = off
        return off

    def _local_hour(self, t: float) -> float:
        return ((self._epoch + t + self._utc_offset(t)) / 3600.0) % 24.0

    def tariff_at(self, t: float) -> int:
        """The tariff at ``t`` seconds after start (cached per minute)."""
        minute = math.floor(t / 60)
        tariff = self._tariff_cache.get(minute)
        if tariff is None:
            tariff = self.config.tariffs.tariff_at(self.start + timedelta(seconds=minute * 60))
            if len(self._tariff_cache) > 4096:
                self._tariff_cache.clear()
            self._tariff_cache[minute] = tariff
        return tariff

    def _event(self, block: int) -> tuple[float, float, float, int] | None:
        """The appliance started in a 5-minute block: (start, end, watts, phase or -1 for all)."""
        cached = self._events.get(block, False)
        if cached is not False:
            return cached  # type: ignore[return-value]
        event: tuple[float, float, float, int] | None = None
        if self._u(20, block) < self.config.appliance_rate:
            _, watts, lo, hi = _APPLIANCES[int(self._u(21, block) * len(_APPLIANCES))]
            start = block * _EVENT_BLOCK + self._u(22, block) * _EVENT_BLOCK
            length = (lo + (hi - lo) * self._u(23, block)) * 60
            phase = -1 if watts >= 2500 else int(self._u(24, block) * 3)  # large loads are three-phase
            event = (start, start + length, watts, phase)
        if len(self._events) > 4096:
            self._events.clear()
        self._events[block] = event
        return event

    def _household(self, t: float) -> list[float]:
        hour = self._local_hour(t)
        h0 = int(hour) % 24
        frac = hour - int(hour)
        mean = _HOURLY[h0] + (_HOURLY[(h0 + 1) % 24] - _HOURLY[h0]) * frac
        mean *= self.config.base_load_scale * (1 + 0.15 * self._smooth(11, t, 600))
        shares = (0.4, 0.35, 0.25)
        loads = [mean * s for s in shares]
        block = math.floor(t / _EVENT_BLOCK)
        for b in range(block - int(_MAX_EVENT / _EVENT_BLOCK), block + 1):
            event = self._event(b)
            if event is None or not event[0] <= t < event[1]:
                continue
            _, _, watts, phase = event
            if phase < 0:
                for p in _PHASES:
                    loads[p] += watts / 3
            else:
                loads[phase] += watts
        return loads

    def _pv(self, t: float) -> float:
        peak = self.config.pv_peak_w
        if peak <= 0:
            return 0.0
        hour = self._local_hour(t)
        if not 6.0 < hour < 20.0:
            return 0.0
        sun = math.sin(math.pi * (hour - 6.0) / 14.0)
        clouds = 0.65 + 0.35 * self._smooth(31, t, 900)
        return peak * sun * sun * clouds

    def _powers(
        self, t: float, active: tuple[Disturbance, ...]
    ) -> tuple[list[float], list[float], list[float], list[float]]:
        """Per phase: load (W), net active power (W, + import), reactive power (var), power factor."""
        loads = self._household(t)
        pv_each = self._pv(t) / 3
        nets: list[float] = []
        reactives: list[float] = []
        factors: list[float] = []
        for ph in _PHASES:
            load = loads[ph]
            factor = 0.78 + 0.19 * min(1.0, load / 1200)
            for d in active:
                if d.kind == "power_factor" and ph + 1 in d.phases:
                    factor = d.magnitude
            factor = max(0.05, min(1.0, factor))
            reactive = load * math.tan(math.acos(factor)) if load >= 120 else -25.0  # standby: capacitive
            nets.append(load - pv_each)
            reactives.append(reactive)
            factors.append(factor)
        return loads, nets, reactives, factors

    def _active(self, t: float) -> tuple[Disturbance, ...]:
        return tuple(d for d in self.config.disturbances if d.active(t))

    def _electrical(self, t: float) -> _Electrical:
        cfg = self.config
        active = self._active(t)
        loads, nets, reactives, factors = self._powers(t, active)
        v: list[float] = []
        pf: list[float] = []
        thd_v: list[float] = []
        thd_i: list[float] = []
        for ph in _PHASES:
            load, net = loads[ph], nets[ph]
            apparent = math.hypot(net, reactives[ph])
            volts = (
                cfg.nominal_voltage
                + 3.0 * self._smooth(50 + ph, t, 1800)
                + 1.0 * self._smooth(53 + ph, t, 60)
            )
            volts -= cfg.line_resistance * apparent / cfg.nominal_voltage
            th_v = 1.6 + 0.8 * (self._smooth(60 + ph, t, 3600) + 1) / 2
            for d in active:
                if ph + 1 not in d.phases:
                    continue
                if d.kind == "voltage_sag":
                    volts *= 1 - d.magnitude
                elif d.kind == "voltage_swell":
                    volts *= 1 + d.magnitude
                elif d.kind == "thd":
                    th_v = d.magnitude
            th_i = 6.0 + 45.0 * max(0.0, 1 - load / 600) + 2 * self._smooth(70 + ph, t, 600)
            v.append(volts)
            pf.append(factors[ph] if net >= 0 else -factors[ph])
            thd_v.append(th_v)
            thd_i.append(max(0.0, th_i))
        freq = cfg.nominal_frequency + 0.03 * self._smooth(80, t, 120) + 0.01 * self._smooth(81, t, 10)
        for d in active:
            if d.kind == "frequency":
                freq += d.magnitude
        return _Electrical(
            (nets[0], nets[1], nets[2]),
            (reactives[0], reactives[1], reactives[2]),
            (v[0], v[1], v[2]),
            (pf[0], pf[1], pf[2]),
            (thd_v[0], thd_v[1], thd_v[2]),
            (thd_i[0], thd_i[1], thd_i[2]),
            freq,
        )

    # ------------------------------------------------------------------ time
    @property
    def now(self) -> datetime:
        return self.start + timedelta(seconds=self._t)

    def _first_capture(self) -> float:
        period = self.config.profile_period.total_seconds()
        epoch = self.start.timestamp()
        return math.ceil(epoch / period) * period - epoch

    def advance(self, to: datetime) -> None:
        """Integrate the energies up to ``to`` (must not be before the last time)."""
        target = (to - self.start).total_seconds()
        if target < self._t - 1e-9:
            raise ValueError(f"E450Model: time runs forward only ({to} is before {self.now})")
        while self._t < target:
            slot_end = (math.floor(self._t / SLOT) + 1) * SLOT
            step_end = min(target, slot_end, self._next_capture)
            self._integrate(self._t, step_end)
            self._t = step_end
            if self._t >= self._next_capture - 1e-9:
                self._capture()
                self._next_capture += self.config.profile_period.total_seconds()

    def _integrate(self, t0: float, t1: float) -> None:
        slot_start = math.floor(t0 / SLOT) * SLOT
        _, nets, reactives, _ = self._powers(slot_start, self._active(slot_start))
        hours = (t1 - t0) / 3600.0
        net = sum(nets)
        q = sum(reactives)
        tariff = self.tariff_at(t0)
        e = self._energy
        if net >= 0:
            e[E_IMPORT] += net * hours
            e[E_IMPORT_T1 if tariff == 1 else E_IMPORT_T2] += net * hours
            e[S_IMPORT] += math.hypot(net, q) * hours
        else:
            e[E_EXPORT] += -net * hours
            e[E_EXPORT_T1 if tariff == 1 else E_EXPORT_T2] += -net * hours
        e[E_ABS] += abs(net) * hours
        if q >= 0:
            e[Q_IMPORT] += q * hours
        else:
            e[Q_EXPORT] += -q * hours

    def _capture(self) -> None:
        at = self.start + timedelta(seconds=round(self._next_capture))
        self.profile.append(ProfileEntry(at, tuple(math.floor(self._energy[c]) for c in PROFILE_REGISTERS)))

    def profile_between(self, since: datetime | None, until: datetime | None) -> list[ProfileEntry]:
        return [
            e for e in self.profile if (since is None or e.at >= since) and (until is None or e.at <= until)
        ]

    # ------------------------------------------------------------------ registers
    def snapshot(self, at: datetime | None = None) -> Snapshot:
        """Advance to ``at`` (default: where the model is) and return every register."""
        if at is not None:
            self.advance(at)
        t = self._t
        el = self._electrical(math.floor(t / SLOT) * SLOT)
        values: dict[ObisCode, float | int | str | datetime] = {
            code: math.floor(self._energy[code]) for code in ENERGY_REGISTERS
        }
        net = sum(el.p)
        q = sum(el.q)
        apparent_each = [math.hypot(el.p[i], el.q[i]) for i in _PHASES]
        apparent = sum(apparent_each)
        currents = [apparent_each[i] / el.v[i] for i in _PHASES]
        neutral = abs(
            sum(currents[i] * _ROT[i] * cmath.exp(-1j * math.acos(min(1.0, abs(el.pf[i])))) for i in _PHASES)
        )
        o = ObisCode.parse
        values |= {
            o("1-0:1.7.0"): max(0.0, net),
            o("1-0:2.7.0"): max(0.0, -net),
            o("1-0:3.7.0"): max(0.0, q),
            o("1-0:4.7.0"): max(0.0, -q),
            o("1-0:9.7.0"): apparent,
            o("1-0:16.7.0"): net,
            o("1-0:36.7.0"): el.p[0],
            o("1-0:56.7.0"): el.p[1],
            o("1-0:76.7.0"): el.p[2],
            o("1-0:21.7.0"): max(0.0, el.p[0]),
            o("1-0:41.7.0"): max(0.0, el.p[1]),
            o("1-0:61.7.0"): max(0.0, el.p[2]),
            o("1-0:32.7.0"): el.v[0],
            o("1-0:52.7.0"): el.v[1],
            o("1-0:72.7.0"): el.v[2],
            o("1-0:31.7.0"): currents[0],
            o("1-0:51.7.0"): currents[1],
            o("1-0:71.7.0"): currents[2],
            o("1-0:91.7.0"): neutral,
            o("1-0:14.7.0"): el.frequency,
            o("1-0:13.7.0"): (abs(net) / apparent if apparent > 0 else 1.0) * (1 if net >= 0 else -1),
            o("1-0:33.7.0"): el.pf[0],
            o("1-0:53.7.0"): el.pf[1],
            o("1-0:73.7.0"): el.pf[2],
            o("1-0:32.7.124"): el.thd_v[0],
            o("1-0:52.7.124"): el.thd_v[1],
            o("1-0:72.7.124"): el.thd_v[2],
            o("1-0:31.7.124"): el.thd_i[0],
            o("1-0:51.7.124"): el.thd_i[1],
            o("1-0:71.7.124"): el.thd_i[2],
            o("0-0:96.1.0"): self.serial_number,
            o("0-0:96.1.1"): self.equipment_id,
            o("0-0:42.0.0"): self.logical_device_name,
            CLOCK: self.now,
            o("1-0:0.2.0"): self.firmware_version,
        }
        tariff = self.tariff_at(t)
        values[o("0-0:96.14.0")] = tariff
        return Snapshot(self.now, values, tariff, self._active(t))

    def energies(self) -> dict[ObisCode, float]:
        """The exact (unfloored) energy integrals in Wh / varh / VAh."""
        return dict(self._energy)


def disturbances_from(texts: Iterable[str]) -> tuple[Disturbance, ...]:
    """Parse several ``KIND:START_S:DURATION_S:MAGNITUDE[:PHASES]`` strings."""
    return tuple(Disturbance.parse(t) for t in texts)
