"""The commissioning checklist: one async function per item, each returning a ``CheckResult``.

communication, measurements, precision, stability, robustness, backup, monitoring, documentation: see each
function. Items read the installation through ``Installation`` and write what they read to a store, so the
monitoring item can check the dashboard's ``/healthz`` and ``/metrics`` against real data.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import httpx

from meterbridge.commissioning.model import CheckResult, Finding, Installation, PollOutcome, Status
from meterbridge.obis import lookup
from meterbridge.readings import Reading
from meterbridge.sinks.store import Store

__all__ = [
    "CLASS_LIMITS",
    "Context",
    "backup",
    "communication",
    "documentation",
    "in_unit",
    "measurements",
    "monitoring",
    "precision",
    "robustness",
    "stability",
]

#: Maximum error of active energy per accuracy class (EN 50470-3 / IEC 62053-21), in %.
CLASS_LIMITS: Final = {"A": Decimal(2), "B": Decimal(1), "C": Decimal("0.5")}
RTT_LIMIT_S: Final = 0.19  # default: the M-Bus reply window at 2400 baud (FIELD_NOTES); "reply_limit_s"
AVAILABILITY_MIN: Final = 0.99
RETRY_SHARE_MAX: Final = 0.2  # more retries than one read in five: a bad line or a misplaced optical head


@dataclass
class Context:
    """What the items share during one run."""

    installation: Installation
    store: Store
    reports_dir: Path
    scratch: Path
    store_url: str
    reference: list[dict[str, Any]] | None = None
    soak_s: float = 3600.0
    disturbance_s: float = 300.0
    notes: str = ""
    last: dict[str, PollOutcome] = field(default_factory=dict)

    async def read(self, meter_id: str) -> PollOutcome:
        outcome = await self.installation.read(meter_id)
        if outcome.readings:
            self.store.add(list(outcome.readings))
            self.store.touch_meter(meter_id, outcome.at)
        self.last[meter_id] = outcome
        return outcome


def _ids(ctx: Context) -> list[str]:
    return [m.id for m in ctx.installation.meters()]


async def communication(ctx: Context, attempts: int = 5) -> CheckResult:
    """Every configured meter answers; round-trip times within the reply window; retries counted."""
    findings = []
    params = ctx.installation.parameters()
    for meter_id in _ids(ctx):
        limit = float(params.get(meter_id, {}).get("reply_limit_s", RTT_LIMIT_S))
        outcomes = [await ctx.read(meter_id) for _ in range(attempts)]
        good = [o for o in outcomes if o.ok]
        rtts = [o.rtt_s for o in good]
        retries = sum(o.retries for o in outcomes)
        figures = {
            "answered": len(good),
            "asked": attempts,
            "retries": retries,
            "rtt_median_ms": round(statistics.median(rtts) * 1000, 1) if rtts else None,
            "rtt_max_ms": round(max(rtts) * 1000, 1) if rtts else None,
        }
        if not good:
            error = outcomes[-1].error or "no readings"
            findings.append(Finding(meter_id, "fail", f"no answer in {attempts} reads: {error}", figures))
        elif max(rtts) > limit:
            findings.append(
                Finding(
                    meter_id,
                    "fail",
                    f"answers too late: {max(rtts) * 1000:.0f} ms > {limit * 1000:.0f} ms",
                    figures,
                )
            )
        elif retries > RETRY_SHARE_MAX * attempts:
            findings.append(
                Finding(
                    meter_id,
                    "fail",
                    f"{retries} retries in {attempts} reads: the line garbles replies",
                    figures,
                )
            )
        elif len(good) < attempts:
            findings.append(Finding(meter_id, "fail", f"answered {len(good)} of {attempts} reads", figures))
        else:
            findings.append(
                Finding(meter_id, "pass", f"answered {attempts} of {attempts}, {retries} retries", figures)
            )
    return CheckResult.from_findings("communication", "Communication", findings)


async def measurements(ctx: Context) -> CheckResult:
    """Every expected quantity is read, with the catalogue's unit and a value in its plausible range."""
    findings = []
    for meter_id in _ids(ctx):
        outcome = ctx.last.get(meter_id) or await ctx.read(meter_id)
        if not outcome.ok:
            findings.append(Finding(meter_id, "fail", f"no reading to check: {outcome.error}"))
            continue
        got = {r.key_text: r for r in outcome.readings}
        expected = ctx.installation.expected(meter_id)
        missing = [k for k in expected if k not in got]
        if missing:
            findings.append(
                Finding(
                    meter_id, "fail", f"{len(missing)} expected registers missing: {', '.join(missing[:6])}"
                )
            )
        for key in sorted(got):
            problem = _implausible(got[key])
            if problem:
                findings.append(Finding(f"{meter_id} {key}", "fail", problem, {"value": str(got[key].value)}))
        if not missing and not any(f.subject.startswith(meter_id + " ") for f in findings):
            if expected:
                detail = f"all {len(expected)} expected registers read and plausible"
            else:
                detail = (
                    f"no expected registers configured (objects, registers); {len(got)} read, all plausible"
                )
            findings.append(Finding(meter_id, "pass", detail))
    return CheckResult.from_findings("measurements", "Measurements", findings)


_PREFIX: Final = {"k": Decimal(1000), "M": Decimal(1_000_000)}


def in_unit(value: Decimal, unit: str | None, target: str | None) -> Decimal | None:
    """``value`` in ``unit`` converted to ``target`` when they differ by a k or M prefix (kWh -> Wh);
    None when the units are not the same quantity."""
    if unit == target:
        return value
    if unit is None or target is None:
        return None
    for prefix, factor in _PREFIX.items():
        if unit == prefix + target:
            return value * factor
        if target == prefix + unit:
            return value / factor
    return None


def _implausible(reading: Reading) -> str | None:
    quantity = lookup(reading.key) if reading.obis is not None else None
    if quantity is None:
        return None
    value = reading.value
    if not isinstance(value, (int, Decimal, float)) or isinstance(value, bool):
        return None
    number = in_unit(Decimal(str(value)), reading.unit, quantity.unit)
    if number is None:
        return f"unit {reading.unit!r}, expected {quantity.unit!r} (check scaler and unit)"
    low, high = quantity.plausible
    if (low is not None and number < low) or (high is not None and number > high):
        shown = f"{value} {reading.unit or ''}".strip()
        return f"{shown} outside the plausible {low}..{high} {quantity.unit or ''} (scaler?)".strip()
    return None


async def precision(ctx: Context) -> CheckResult:
    """Readings against reference values: error % per register against the class limit (class B: 1 %)."""
    if not ctx.reference:
        return CheckResult("precision", "Precision", "skip", "no reference values given (--reference FILE)")
    findings = []
    for ref in ctx.reference:
        meter_id, key = str(ref["meter_id"]), str(ref["key"])
        klass = str(ref.get("class") or "B").upper()
        limit = CLASS_LIMITS.get(klass)
        subject = f"{meter_id} {key}"
        if limit is None:
            findings.append(Finding(subject, "fail", f"accuracy class {klass!r} unknown (A, B, C)"))
            continue
        outcome = ctx.last.get(meter_id) or await ctx.read(meter_id)
        reading = next((r for r in outcome.readings if r.key_text == key), None)
        if reading is None:
            findings.append(Finding(subject, "fail", "register not read"))
            continue
        expected = Decimal(str(ref["value"]))
        ref_unit = ref.get("unit") or reading.unit
        value = in_unit(Decimal(str(reading.value)), reading.unit, ref_unit)
        if value is None:
            findings.append(Finding(subject, "fail", f"read in {reading.unit!r}, reference in {ref_unit!r}"))
            continue
        error = (value - expected) / expected * 100 if expected else Decimal(0)
        figures = {
            "read": str(value),
            "reference": str(expected),
            "error_pct": float(round(error, 4)),
            "limit_pct": float(limit),
        }
        status: Status = "pass" if abs(error) <= limit else "fail"
        findings.append(
            Finding(subject, status, f"error {error:+.3f} % (class {klass}: ±{limit} %)", figures)
        )
    return CheckResult.from_findings("precision", "Precision", findings)


def _process_figures() -> tuple[int, int]:
    """(resident memory in kB, open file descriptors) of this process."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            rss_kb = int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        fds = len(os.listdir("/proc/self/fd"))
    except OSError:
        fds = -1
    return rss_kb, fds


@dataclass
class _SoakTally:
    """What the soak keeps per meter: figures, not the readings (so the process does not grow with it)."""

    polls: int = 0
    good: int = 0
    last_good: datetime | None = None
    gaps: list[float] = field(default_factory=list)
    counters: dict[str, Decimal] = field(default_factory=dict)
    drops: list[str] = field(default_factory=list)

    def add(self, poll: PollOutcome, interval: float) -> None:
        self.polls += 1
        if not poll.ok:
            return
        self.good += 1
        if self.last_good is not None:
            step = (poll.at - self.last_good).total_seconds()
            if step > 1.5 * interval:
                self.gaps.append(step)
        self.last_good = poll.at
        for r in poll.readings:
            quantity = lookup(r.key) if r.obis is not None else None
            if quantity is None or not quantity.is_counter:
                continue
            value = Decimal(str(r.value))
            before = self.counters.get(r.key_text)
            if before is not None and value < before:
                self.drops.append(f"{r.key_text} {before} -> {value} at {poll.at.isoformat()}")
            self.counters[r.key_text] = value


async def stability(ctx: Context, interval_s: float | None = None) -> CheckResult:
    """A soak: every meter read every interval for ``soak_s`` of installation time; availability, gaps,
    counter monotonicity, and this process's memory and file descriptor growth after a warm-up quarter."""
    interval = interval_s or float(
        next(iter(ctx.installation.parameters().values()), {}).get("interval_s", 60)
    )
    rounds = max(2, int(ctx.soak_s // interval))
    ids = _ids(ctx)
    tallies = {m: _SoakTally() for m in ids}
    rss0, fds0 = _process_figures()
    for n in range(rounds):
        if n == rounds // 4:  # steady state: caches and pools are warm after the first quarter
            rss0, fds0 = _process_figures()
        for meter_id in ids:
            tallies[meter_id].add(await ctx.read(meter_id), interval)
        await ctx.installation.wait(interval)
    rss1, fds1 = _process_figures()
    findings = []
    for meter_id in ids:
        t = tallies[meter_id]
        availability = t.good / t.polls
        figures = {
            "polls": t.polls,
            "availability": round(availability, 4),
            "gaps": len(t.gaps),
            "longest_gap_s": max(t.gaps, default=0.0),
            "counter_drops": t.drops[:10],
        }
        problems = []
        if availability < AVAILABILITY_MIN:
            problems.append(f"availability {availability:.1%} < {AVAILABILITY_MIN:.0%}")
        if t.drops:
            problems.append("counter went backwards: " + ", ".join(t.drops[:3]))
        if problems:
            findings.append(Finding(meter_id, "fail", "; ".join(problems), figures))
        else:
            detail = f"available {availability:.1%}, {len(t.gaps)} gaps, counters monotonic"
            findings.append(Finding(meter_id, "pass", detail, figures))
    growth = {"rss_kb_before": rss0, "rss_kb_after": rss1, "fds_before": fds0, "fds_after": fds1}
    leaking = fds1 - fds0 > 10 or rss1 - rss0 > 20_000
    findings.append(
        Finding(
            "gateway process",
            "fail" if leaking else "pass",
            f"memory {rss1 - rss0:+d} kB, file descriptors {fds1 - fds0:+d} over the last "
            f"{rounds - rounds // 4} of {rounds} rounds (limits: 20 MB, 10)",
            growth,
        )
    )
    return CheckResult.from_findings(
        "stability", f"Stability (soak of {ctx.soak_s:g} s installation time, {rounds} rounds)", findings
    )


async def robustness(ctx: Context, interval_s: float = 60.0, fault: str = "silent") -> CheckResult:
    """A disturbance on the simulator: each meter silenced for ``disturbance_s``, then the time until its
    first good reading after the fault clears (recovery must take at most three intervals)."""
    if not ctx.installation.can_inject:
        return CheckResult(
            "robustness", "Robustness", "skip", "fault injection needs the simulator (--simulate)"
        )
    findings = []
    for meter_id in _ids(ctx):
        before = ctx.last.get(meter_id) or await ctx.read(meter_id)
        if not before.ok:
            findings.append(
                Finding(meter_id, "skip", f"not answering before the disturbance: {before.error}")
            )
            continue
        await ctx.installation.inject(meter_id, fault, True)
        during = []
        elapsed = 0.0
        while elapsed < ctx.disturbance_s:
            during.append(await ctx.read(meter_id))
            await ctx.installation.wait(interval_s)
            elapsed += interval_s
        await ctx.installation.inject(meter_id, fault, False)
        cleared = ctx.installation.now()
        recovery = None
        for _ in range(10):
            outcome = await ctx.read(meter_id)
            if outcome.ok:
                recovery = (outcome.at - cleared).total_seconds()
                break
            await ctx.installation.wait(interval_s)
        noticed = sum(1 for o in during if not o.ok)
        figures = {"fault": fault, "failed_reads_during": noticed, "recovery_s": recovery}
        if recovery is None:
            findings.append(Finding(meter_id, "fail", "did not recover within 10 reads", figures))
        elif recovery > 3 * interval_s:
            findings.append(
                Finding(meter_id, "fail", f"recovered after {recovery:g} s (> 3 intervals)", figures)
            )
        else:
            findings.append(
                Finding(
                    meter_id,
                    "pass",
                    f"fault seen in {noticed} reads; recovered after {recovery:g} s",
                    figures,
                )
            )
    return CheckResult.from_findings(
        "robustness", f"Robustness ({fault} for {ctx.disturbance_s:g} s)", findings
    )


async def _meterbridge(*args: str, timeout: float = 120.0) -> tuple[int, str]:
    """Run a ``meterbridge`` command in a child process: (exit code, output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meterbridge",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"timed out after {timeout:g} s"
    return int(proc.returncode or 0), out.decode(errors="replace").strip()


async def backup(ctx: Context) -> CheckResult:
    """``meterbridge backup`` of the configuration and the meter inventory, then ``meterbridge restore`` of
    that file into a scratch directory: the inventory and the configuration must come back."""
    config = ctx.installation.config_file(ctx.scratch)
    target = ctx.reports_dir / f"backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    code, out = await _meterbridge("backup", "-c", str(config), "-o", str(target), "--store", ctx.store_url)
    if code != 0:
        detail = out.splitlines()[-1] if out else f"exit code {code}"
        return CheckResult.from_findings("backup", "Backup", [Finding("meterbridge backup", "fail", detail)])
    findings = [
        Finding(
            "meterbridge backup", "pass", out.splitlines()[-1] if out else target.name, {"file": target.name}
        )
    ]
    restored_config = ctx.scratch / "restored.yaml"
    restored_store = ctx.scratch / "restored.sqlite"
    code, out = await _meterbridge(
        "restore",
        str(target),
        "-c",
        str(restored_config),
        "--store",
        f"sqlite:///{restored_store}",
        "--without-keys",
    )
    if code != 0:
        findings.append(
            Finding("meterbridge restore", "fail", out.splitlines()[-1] if out else f"exit code {code}")
        )
        return CheckResult.from_findings("backup", "Backup", findings)
    body = json.loads(target.read_text(encoding="utf-8"))
    wanted = sorted(m.id for m in ctx.store.meters())
    from meterbridge.sinks.store import open_store

    with open_store(str(restored_store)) as back:
        got = sorted(m.id for m in back.meters())
    same_text = restored_config.read_text(encoding="utf-8") == config.read_text(encoding="utf-8")
    redacted = body.get("redacted") or []
    ok = got == wanted and (same_text or bool(redacted))
    detail = f"{len(got)} of {len(wanted)} meters restored; configuration " + (
        "identical" if same_text else f"restored with {len(redacted)} secrets left out"
    )
    findings.append(Finding("meterbridge restore", "pass" if ok else "fail", detail, {"meters": got}))
    return CheckResult.from_findings("backup", "Backup", findings)


def _meter_dict(meter: Any) -> dict[str, Any]:
    return {
        "id": meter.id,
        "name": meter.name,
        "kind": meter.kind,
        "protocol": meter.protocol,
        "address": meter.address,
        "serial": meter.serial,
        "manufacturer": meter.manufacturer,
        "firmware": meter.firmware,
        "last_seen": meter.last_seen.isoformat() if meter.last_seen else None,
    }


async def monitoring(ctx: Context) -> CheckResult:
    """The dashboard's ``/healthz`` answers ok and ``/metrics`` carries last seen per meter and the outbox."""
    from meterbridge.web import create_app

    app = create_app(ctx.store)
    findings = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://check") as client:
        health = await client.get("/healthz")
        body = health.json() if health.headers.get("content-type", "").startswith("application/json") else {}
        findings.append(
            Finding(
                "/healthz",
                "pass" if health.status_code == 200 and body.get("status") == "ok" else "fail",
                f"HTTP {health.status_code}, status {body.get('status')!r}",
                body,
            )
        )
        metrics = (await client.get("/metrics")).text
    for meter_id in _ids(ctx):
        line = f'meterbridge_meter_last_seen_timestamp_seconds{{meter="{meter_id}"}}'
        findings.append(
            Finding(
                f"/metrics {meter_id}",
                "pass" if line in metrics else "fail",
                "last seen exported" if line in metrics else "no last seen: the meter was never read",
            )
        )
    has_outbox = "meterbridge_outbox_depth" in metrics
    findings.append(Finding("/metrics outbox", "pass" if has_outbox else "fail", "outbox depth exported"))
    return CheckResult.from_findings("monitoring", "Monitoring", findings)


async def documentation(ctx: Context) -> CheckResult:
    """The inventory: meters, addresses, serial numbers, firmware, parameters, wiring notes."""
    params = ctx.installation.parameters()
    findings = []
    for meter in ctx.installation.meters():
        read = {r.key_text: r.value for r in ctx.last[meter.id].readings} if meter.id in ctx.last else {}
        fabrication = next((v for k, v in read.items() if "/fabrication_number/" in k), None)  # M-Bus record
        serial = meter.serial or read.get("0-0:96.1.0.255") or fabrication
        firmware = meter.firmware or read.get("1-0:0.2.0.255")
        figures = {
            "address": meter.address,
            "protocol": meter.protocol,
            "serial": serial,
            "manufacturer": meter.manufacturer,
            "firmware": firmware,
            **{f"param {k}": v for k, v in params.get(meter.id, {}).items()},
        }
        missing = [k for k in ("address", "serial") if not figures.get(k)]
        findings.append(
            Finding(
                meter.id,
                "fail" if missing else "pass",
                ("missing: " + ", ".join(missing)) if missing else "address, serial and parameters recorded",
                figures,
            )
        )
    findings.append(
        Finding("wiring notes", "pass" if ctx.notes else "skip", ctx.notes or "none given (--notes FILE)")
    )
    return CheckResult.from_findings("documentation", "Documentation", findings)
