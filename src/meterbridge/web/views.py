"""The dashboard's data: what each page and API answer shows, built from store reads, as plain JSON values.

Pages (HTML) and the JSON API are two renderings of the same dictionaries built here, so the API behind a
page always says what the page shows. Every function is synchronous (the store is); the app calls them in a
thread.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from meterbridge.obis import lookup
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.history import (
    BAD_COUNTER_QUALITY,
    MAX_POINTS,
    History,
    Series,
    period_boundaries,
    tariff_keys,
)
from meterbridge.sinks.store import EVENT_KINDS, MeterInfo, Store

__all__ = [
    "KEY_PRIORITY",
    "RANGES",
    "BadRequest",
    "NotFound",
    "WebContext",
    "bus_view",
    "energy_view",
    "events_view",
    "meter_detail",
    "meter_summaries",
    "meter_summary",
    "parse_time",
    "report_files",
    "resolve_range",
    "series_csv",
    "series_view",
]

#: Preset plot ranges (name -> length in ms).
RANGES: Final = {
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 7 * 86_400_000,
    "month": 31 * 86_400_000,
}

#: Which registers the overview shows first (catalogue keys); other numeric registers follow, up to six.
KEY_PRIORITY: Final = (
    "power_import",
    "power",
    "power_export",
    "energy_import",
    "energy_export",
    "voltage_l1",
    "voltage_l2",
    "voltage_l3",
    "current_l1",
    "frequency",
)
#: Live values per meter on the overview (an E450 push's 13 all fit); the rest: "N more" to the meter page.
_OVERVIEW_VALUES: Final = 16
_REPORT_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(html|json)$")


class BadRequest(ValueError):
    """A request parameter is malformed; the message names it."""


class NotFound(LookupError):
    """The meter, register or report asked for does not exist."""


@dataclass(slots=True)
class WebContext:
    """What the dashboard serves from, shared by every request."""

    store: Store
    token: str | None = field(default=None, repr=False)
    reports_dir: Path | None = None
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    stale_after_s: float = 900.0
    live_interval_s: float = 1.0
    history: History = field(init=False)

    def __post_init__(self) -> None:
        self.history = History(self.store)


# ---------------------------------------------------------------- small conversions


def _ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _quantity_name(key: str, reading: Reading | None = None) -> str:
    if reading is not None and reading.name:
        return reading.name
    try:
        quantity = lookup(key)
    except ValueError:
        quantity = None
    return quantity.name if quantity is not None else key


def _series_name(ctx: WebContext, meter_id: str, key: str) -> str:
    name = _quantity_name(key)
    if name == key:  # not in the catalogue (M-Bus records): the name the reading was stored with
        name = _quantity_name(key, ctx.history.latest(meter_id).get(key))
    return name


def _catalogue_key(key: str) -> str | None:
    try:
        quantity = lookup(key)
    except ValueError:
        return None
    return quantity.key if quantity is not None else None


def _is_counter(key: str) -> bool:
    try:
        quantity = lookup(key)
    except ValueError:
        quantity = None
    if quantity is not None:
        return quantity.is_counter
    return "/energy" in key or "/volume" in key


def reading_json(reading: Reading) -> dict[str, Any]:
    return {
        "key": reading.key_text,
        "name": _quantity_name(reading.key_text, reading),
        "value": _number(reading.value),
        "text": _text(reading.value),
        "unit": reading.unit,
        "ts": _ms(reading.timestamp),
        "quality": reading.quality.names,
    }


def parse_time(text: str | None, what: str) -> int | None:
    """Epoch milliseconds, or ISO 8601 (a time without offset is UTC; a bare date is its UTC midnight)."""
    if text is None or text == "":
        return None
    text = text.strip()
    if re.fullmatch(r"-?\d{1,16}", text):
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise BadRequest(f"{what} must be epoch milliseconds or ISO 8601, got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def resolve_range(
    start: str | None, end: str | None, preset: str | None, now_ms: int | None = None
) -> tuple[int, int]:
    """``[start, end)`` in epoch ms from explicit bounds or a preset (``hour`` ... ``month``, ending now)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    start_ms = parse_time(start, "start")
    end_ms = parse_time(end, "end")
    if preset is not None and preset not in RANGES:
        raise BadRequest(f"range must be one of {', '.join(RANGES)}, got {preset!r}")
    length = RANGES[preset or "day"]
    if end_ms is None:
        end_ms = now_ms if start_ms is None or preset else start_ms + length
    if start_ms is None:
        start_ms = end_ms - length
    if end_ms <= start_ms:
        raise BadRequest(f"end ({end_ms}) must be after start ({start_ms})")
    return start_ms, end_ms


# ---------------------------------------------------------------- overview


def _active_by_meter(ctx: WebContext) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for event in ctx.history.active_events():
        out.setdefault(event.meter_id, []).append(
            {"kind": event.kind, "key": event.key, "message": event.message, "ts": event.ts}
        )
    return out


def _state(
    meter: MeterInfo,
    latest: dict[str, Reading],
    active: Sequence[dict[str, Any]],
    ctx: WebContext,
    now: float,
) -> tuple[str, str]:
    last = meter.last_seen
    if last is None and latest:
        last = max(r.timestamp for r in latest.values())
    if last is None:
        return "unknown", "waiting for first reading"
    age = now - last.timestamp()
    if age > ctx.stale_after_s:
        return "stale", f"no reading for {_duration(age)}"
    if active:
        kinds = sorted({a["kind"] for a in active})
        return "warning", "active: " + ", ".join(kinds)
    flagged = sorted({n for r in latest.values() for n in r.quality.names})
    if flagged:
        return "warning", "flagged readings: " + ", ".join(flagged)
    return "ok", "all readings good"


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _key_values(latest: dict[str, Reading]) -> tuple[list[Reading], int]:
    """The numeric values shown on the overview (catalogue priority first) and how many more there are."""
    numeric = {k: r for k, r in latest.items() if _number(r.value) is not None}
    by_catalogue = {_catalogue_key(k): r for k, r in numeric.items()}
    chosen = [by_catalogue[k] for k in KEY_PRIORITY if k in by_catalogue]
    for key in sorted(numeric, key=_natural):
        if numeric[key] not in chosen:
            chosen.append(numeric[key])
    return chosen[:_OVERVIEW_VALUES], max(0, len(chosen) - _OVERVIEW_VALUES)


def _natural(key: str) -> tuple[tuple[int, str], ...]:
    """Sort key that orders ``mbus/2/...`` before ``mbus/10/...``."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in key.split("/"))


def meter_summary(
    ctx: WebContext,
    meter: MeterInfo,
    active: Sequence[dict[str, Any]] = (),
    now: float | None = None,
) -> dict[str, Any]:
    latest = ctx.history.latest(meter.id)
    now = time.time() if now is None else now
    state, detail = _state(meter, latest, active, ctx, now)
    last_seen = meter.last_seen or (max(r.timestamp for r in latest.values()) if latest else None)
    values, more = _key_values(latest)
    return {
        "id": meter.id,
        "name": meter.name or meter.id,
        "kind": meter.kind,
        "protocol": meter.protocol,
        "last_seen": _ms(last_seen),
        "state": state,
        "state_detail": detail,
        "values": [reading_json(r) for r in values],
        "more_values": more,
    }


def meter_summaries(ctx: WebContext) -> list[dict[str, Any]]:
    active = _active_by_meter(ctx)
    now = time.time()
    return [meter_summary(ctx, m, active.get(m.id, ()), now) for m in sorted(ctx.store.meters(), key=_order)]


def _order(meter: MeterInfo) -> tuple[str, str]:
    return ((meter.name or meter.id).lower(), meter.id)


def _find_meter(ctx: WebContext, meter_id: str) -> MeterInfo:
    for meter in ctx.store.meters():
        if meter.id == meter_id:
            return meter
    if ctx.history.keys(meter_id):  # readings stored before the inventory knew the meter
        return MeterInfo(id=meter_id)
    raise NotFound(f"no meter {meter_id!r}")


def _inventory(meter: MeterInfo) -> dict[str, Any]:
    return {
        "id": meter.id,
        "name": meter.name or meter.id,
        "kind": meter.kind,
        "protocol": meter.protocol,
        "address": meter.address,
        "serial": meter.serial,
        "manufacturer": meter.manufacturer,
        "firmware": meter.firmware,
        "last_seen": _ms(meter.last_seen),
    }


# ---------------------------------------------------------------- meter detail


def meter_detail(ctx: WebContext, meter_id: str) -> dict[str, Any]:
    meter = _find_meter(ctx, meter_id)
    latest = ctx.history.latest(meter.id)
    active = _active_by_meter(ctx).get(meter_id, [])
    state, detail = _state(meter, latest, active, ctx, time.time())
    quantities = []
    for key in sorted(latest, key=_key_order):  # natural order within the rest: mbus/2 before mbus/10
        reading = latest[key]
        quantities.append(
            {
                **reading_json(reading),
                "numeric": _number(reading.value) is not None,
                "counter": _is_counter(key),
            }
        )
    tariffs = tariff_keys(list(latest))
    counters = [q["key"] for q in quantities if q["counter"] and q["numeric"]]
    return {
        "meter": _inventory(meter),
        "state": state,
        "state_detail": detail,
        "active_events": active,
        "quantities": quantities,
        "tariffs": tariffs,
        # without tariff registers the consumption bars show the first counter (heat, water, gas meters)
        "consumption_key": None if tariffs else (counters[0] if counters else None),
    }


def _key_order(key: str) -> tuple[int, tuple[tuple[int, str], ...]]:
    catalogue = _catalogue_key(key)
    if catalogue in KEY_PRIORITY:
        return KEY_PRIORITY.index(catalogue), _natural(key)
    return len(KEY_PRIORITY), _natural(key)


# ---------------------------------------------------------------- series and CSV


def series_view(
    ctx: WebContext, meter_id: str, key: str, start_ms: int, end_ms: int, points: int, flagged: bool = False
) -> tuple[Series, dict[str, Any]]:
    """The plot of one register; readings flagged not monotonic, out of range or as a meter error are left
    out unless ``flagged`` (a garbled 0 of a counter must not draw a spike)."""
    if not key:
        raise BadRequest("key is required")
    if not 1 <= points <= MAX_POINTS:
        raise BadRequest(f"points must be 1-{MAX_POINTS}, got {points}")
    exclude = 0 if flagged else BAD_COUNTER_QUALITY
    series = ctx.history.series(meter_id, key, start_ms, end_ms, points, exclude=exclude)
    if not series.t:
        _find_meter(ctx, meter_id)  # an empty answer for an unknown meter is a 404 (looked up only then)
    payload: dict[str, Any] = {
        "meter_id": meter_id,
        "key": key,
        "name": _series_name(ctx, meter_id, key),
        "unit": series.unit,
        "start": start_ms,
        "end": end_ms,
        "raw": series.raw,
        "flagged": flagged,
        "bucket_ms": series.bucket_ms,
        "total": series.total,
        "t": series.t,
    }
    if series.raw:
        payload["value"] = series.vavg
    else:
        payload.update(
            min=series.vmin,
            avg=series.vavg,
            max=series.vmax,
            count=series.count,
        )
    return series, payload


def series_csv(series: Series) -> str:
    """The points of a plot as CSV: the stored rows (exact values) when raw, else one row per bucket."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if series.raw:
        writer.writerow(["timestamp_utc", "ts_ms", "meter_id", "key", "value", "unit", "quality"])
        for row in series.rows:
            writer.writerow(
                [
                    _iso(row.ts),
                    row.ts,
                    series.meter_id,
                    series.key,
                    row.value,
                    row.unit or "",
                    "|".join(Quality(row.quality).names),
                ]
            )
    else:
        writer.writerow(
            [
                "bucket_start_utc",
                "bucket_start_ms",
                "bucket_ms",
                "meter_id",
                "key",
                "count",
                "min",
                "avg",
                "max",
                "unit",
            ]
        )
        for i, t in enumerate(series.t):
            writer.writerow(
                [
                    _iso(t),
                    t,
                    series.bucket_ms,
                    series.meter_id,
                    series.key,
                    series.count[i],
                    repr(series.vmin[i]),
                    repr(series.vavg[i]),
                    repr(series.vmax[i]),
                    series.unit or "",
                ]
            )
    return out.getvalue()


# ---------------------------------------------------------------- energy


def _zone(name: str | None, ctx: WebContext) -> ZoneInfo:
    if not name:
        return ctx.tz
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"tz {name!r} is not a known IANA time zone") from None


def _date(text: str | None, what: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{what} must be a date YYYY-MM-DD, got {text!r}") from None


def energy_view(
    ctx: WebContext,
    meter_id: str,
    period: str,
    start: str | None,
    end: str | None,
    register: str,
    tz_name: str | None,
    key: str | None = None,
) -> dict[str, Any]:
    """Energy per local day or month, per tariff, from the counters' differences at the boundaries; with
    ``key``, the consumption of that one counter (a heat, water or gas meter's register) instead."""
    if period not in ("day", "month"):
        raise BadRequest(f"period must be 'day' or 'month', got {period!r}")
    if key is None and register not in ("1.8", "2.8"):
        raise BadRequest(f"register must be '1.8' (import) or '2.8' (export), got {register!r}")
    zone = _zone(tz_name, ctx)
    _find_meter(ctx, meter_id)
    today = datetime.now(zone).date()
    end_day = _date(end, "end") or today
    default_start = (
        end_day - timedelta(days=30) if period == "day" else date(end_day.year - 1, end_day.month, 1)
    )
    start_day = _date(start, "start") or default_start
    if end_day < start_day:
        raise BadRequest(f"end {end_day} is before start {start_day}")
    limit = 366 if period == "day" else 120
    buckets = period_boundaries(start_day, end_day, period, zone)  # type: ignore[arg-type]
    if len(buckets) > limit:
        raise BadRequest(f"at most {limit} {period}s per request, asked for {len(buckets)}")
    if key is not None:
        if key not in ctx.history.keys(meter_id):
            raise NotFound(f"meter {meter_id!r} has no register {key!r}")
        if not _is_counter(key):
            raise BadRequest(f"{key!r} is not a counter: its differences are not a consumption")
        roles = {"total": key}
    else:
        keys = tariff_keys(ctx.history.keys(meter_id), register)  # type: ignore[arg-type]
        roles = {r: k for r, k in keys.items() if r in ("t1", "t2")} or keys
    report = ctx.history.energy(meter_id, roles, buckets, period=period, tz=zone.key)
    rows = []
    for bucket in report.buckets:
        row: dict[str, Any] = {"label": bucket.label, "start": bucket.start_ms, "end": bucket.end_ms}
        total: Decimal | None = Decimal(0)
        for role, role_key in roles.items():
            diff = bucket.by_key[role_key]
            row[role] = None if diff is None else float(diff)
            row[role + "_text"] = None if diff is None else str(diff)
            total = None if diff is None or total is None else total + diff
        if "total" not in roles:
            row["total"] = None if total is None else float(total)
            row["total_text"] = None if total is None else str(total)
        rows.append(row)
    return {
        "meter_id": meter_id,
        "period": period,
        "tz": zone.key,
        "register": register,
        "unit": report.unit,
        "keys": roles,
        "buckets": rows,
    }


# ---------------------------------------------------------------- events, bus, reports


def events_view(
    ctx: WebContext,
    meter: str | None,
    kind: str | None,
    start: str | None,
    end: str | None,
    active: str | None,
    limit: int,
) -> dict[str, Any]:
    if kind and kind not in EVENT_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(sorted(EVENT_KINDS))}, got {kind!r}")
    if active not in (None, "", "raised", "cleared"):
        raise BadRequest(f"active must be 'raised' or 'cleared', got {active!r}")
    if not 1 <= limit <= 10_000:
        raise BadRequest(f"limit must be 1-10000, got {limit}")
    rows = ctx.history.events(
        meter=meter or None,
        kind=kind or None,
        start_ms=parse_time(start, "start"),
        end_ms=parse_time(end, "end"),
        active=None if not active else active == "raised",
        limit=limit,
    )
    return {
        "events": [
            {
                "id": e.id,
                "meter_id": e.meter_id,
                "kind": e.kind,
                "key": e.key,
                "value": e.value,
                "threshold": e.threshold,
                "message": e.message,
                "ts": e.ts,
                "active": e.active,
            }
            for e in rows
        ],
        "kinds": dict(sorted(EVENT_KINDS.items())),
        "meters": sorted(m.id for m in ctx.store.meters()),
    }


def _bus_of(meter: MeterInfo) -> str:
    """The bus a meter sits on: its protocol, and the port when the address names one as ``PORT#ADDRESS``."""
    protocol = meter.protocol or "unknown"
    address = meter.address or ""
    if "#" in address:
        return f"{protocol} {address.rsplit('#', 1)[0]}"
    return protocol


def bus_view(ctx: WebContext) -> dict[str, Any]:
    counts = ctx.history.event_counts(("bus_collisions", "meter_error", "meter_silent"))
    day_ago = int(time.time() * 1000) - 86_400_000
    recent = ctx.history.reading_counts(day_ago)
    buses: dict[str, list[dict[str, Any]]] = {}
    for meter in sorted(ctx.store.meters(), key=lambda m: (_bus_of(m), m.address or "", m.id)):
        c = counts.get(meter.id, {})
        buses.setdefault(_bus_of(meter), []).append(
            {
                **_inventory(meter),
                "collisions": c.get("bus_collisions", 0),
                "errors": c.get("meter_error", 0),
                "silent": c.get("meter_silent", 0),
                "readings_24h": recent.get(meter.id, 0),
            }
        )
    return {"buses": [{"name": name, "meters": meters} for name, meters in buses.items()]}


def report_files(ctx: WebContext) -> list[dict[str, Any]]:
    """Commissioning reports (``*.html``, ``*.json``) in ``reports_dir``, newest first."""
    if ctx.reports_dir is None or not ctx.reports_dir.is_dir():
        return []
    out: list[dict[str, Any]] = []
    for path in ctx.reports_dir.iterdir():
        if path.is_file() and _REPORT_NAME.match(path.name):
            stat = path.stat()
            out.append(
                {
                    "name": path.name,
                    "format": path.suffix[1:],
                    "size": stat.st_size,
                    "modified": int(stat.st_mtime * 1000),
                    "url": f"/reports/{path.name}",
                }
            )
    out.sort(key=lambda r: (-r["modified"], r["name"]))
    return out


def report_path(ctx: WebContext, name: str) -> Path:
    if ctx.reports_dir is None or not _REPORT_NAME.match(name):
        raise NotFound(f"no report {name!r}")
    path = (ctx.reports_dir / name).resolve()
    if path.parent != ctx.reports_dir.resolve() or not path.is_file():
        raise NotFound(f"no report {name!r}")
    return path
