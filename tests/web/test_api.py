"""The dashboard's JSON API against a store filled with known data (written through ``Store.add``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from meterbridge.errors import ConfigError
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.history import MAX_POINTS
from meterbridge.web import check_bind, create_app

BASE = datetime(2026, 3, 1, tzinfo=UTC)
T1, T2, TOTAL = "1-0:1.8.1.255", "1-0:1.8.2.255", "1-0:1.8.0.255"
VOLTAGE = "1-0:32.7.0.255"
HEAT_KEY = "mbus/0/energy/instantaneous/s0/t0/u0"


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


async def get(app: Any, url: str, **kw: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(url, **kw)


@pytest.fixture
def app(known: Any, reports_dir: Path) -> Any:
    return create_app(known.store, reports_dir=reports_dir)


async def test_overview_lists_every_meter_with_key_values(app: Any, known: Any) -> None:
    body = (await get(app, "/api/meters")).json()
    by_id = {m["id"]: m for m in body["meters"]}
    assert set(by_id) == {"e450", "heat-7"}
    e450 = by_id["e450"]
    assert e450["name"] == "House E450" and e450["kind"] == "electricity"
    values = {v["key"]: v for v in e450["values"]}
    last_voltage = known.rows("e450", VOLTAGE)[-1]
    assert values[VOLTAGE]["value"] == last_voltage.value
    assert values[VOLTAGE]["unit"] == "V"
    assert values[T1]["text"] == str(known.rows("e450", T1)[-1].value)
    assert e450["last_seen"] == ms(BASE + timedelta(minutes=15 * 959))
    # the data is from March 2026: both meters are stale now
    assert {m["state"] for m in body["meters"]} == {"stale"}
    heat = by_id["heat-7"]
    assert heat["values"][0]["key"] == HEAT_KEY


async def test_meter_detail_lists_every_register_and_the_tariffs(app: Any) -> None:
    body = (await get(app, "/api/meters/e450")).json()
    assert body["meter"]["serial"] == "71234567"
    keys = {q["key"] for q in body["quantities"]}
    assert {T1, T2, TOTAL, VOLTAGE, "1-0:1.7.0.255"} == keys
    assert body["tariffs"] == {"t1": T1, "t2": T2, "total": TOTAL}
    counters = {q["key"] for q in body["quantities"] if q["counter"]}
    assert counters == {T1, T2, TOTAL}
    assert (await get(app, "/api/meters/nope")).status_code == 404


async def test_small_range_returns_the_stored_rows(app: Any, known: Any) -> None:
    start, end = BASE + timedelta(hours=5), BASE + timedelta(hours=11)
    r = await get(app, f"/api/meters/e450/series?key={VOLTAGE}&start={ms(start)}&end={ms(end)}&points=500")
    body = r.json()
    rows = [x for x in known.rows("e450", VOLTAGE) if start <= x.timestamp < end]
    assert body["raw"] is True and body["total"] == len(rows) == 24
    assert body["t"] == [ms(x.timestamp) for x in rows]
    assert body["value"] == [x.value for x in rows]


async def test_large_range_is_aggregated_per_bucket(app: Any, known: Any) -> None:
    start, end = BASE, BASE + timedelta(days=10)
    r = await get(app, f"/api/meters/e450/series?key={VOLTAGE}&start={ms(start)}&end={ms(end)}&points=100")
    body = r.json()
    assert body["raw"] is False
    assert len(body["t"]) <= 100
    rows = known.rows("e450", VOLTAGE)
    assert body["total"] == sum(body["count"]) == len(rows) == 960
    width = body["bucket_ms"]
    assert width == -(-(ms(end) - ms(start)) // 100)  # ceil(range / points)
    buckets: dict[int, list[float]] = {}
    for row in rows:
        b = (ms(row.timestamp) - ms(start)) // width
        buckets.setdefault(ms(start) + b * width, []).append(row.value)
    assert body["t"] == sorted(buckets)
    for i, t in enumerate(body["t"]):
        values = buckets[t]
        assert body["min"][i] == min(values)
        assert body["max"][i] == max(values)
        assert body["count"][i] == len(values)
        assert body["avg"][i] == pytest.approx(sum(values) / len(values), abs=5e-7)  # 6 decimals


async def test_preset_ranges_and_bad_parameters(app: Any) -> None:
    assert (await get(app, f"/api/meters/e450/series?key={VOLTAGE}&range=week")).status_code == 200
    for query, word in (
        (f"key={VOLTAGE}&range=year", "range"),
        (f"key={VOLTAGE}&start=yesterday", "start"),
        (f"key={VOLTAGE}&start=2000&end=1000", "end"),
        (f"key={VOLTAGE}&points=5000", "points"),
        (f"key={VOLTAGE}&points=many", "points"),
        ("range=day", "key"),
    ):
        r = await get(app, f"/api/meters/e450/series?{query}")
        assert r.status_code == 400, query
        assert word in r.json()["error"]


async def test_iso_times_are_accepted(app: Any) -> None:
    r = await get(
        app,
        f"/api/meters/e450/series?key={VOLTAGE}&start=2026-03-01T05:00:00Z&end=2026-03-01T11:00:00%2B00:00",
    )
    assert r.json()["total"] == 24


async def test_csv_of_a_raw_plot_equals_the_stored_rows(app: Any, known: Any) -> None:
    start, end = BASE + timedelta(days=3), BASE + timedelta(days=4)
    query = f"key={T1}&start={ms(start)}&end={ms(end)}&points=1000"
    r = await get(app, f"/api/meters/e450/series.csv?{query}")
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    stored = list(known.store.readings("e450", T1, start, end))
    assert len(rows) == len(stored) == 96
    for row, reading in zip(rows, stored, strict=True):
        assert int(row["ts_ms"]) == ms(reading.timestamp)
        assert Decimal(row["value"]) == reading.value and row["value"] == str(reading.value)
        assert row["unit"] == "Wh"
    plot = (await get(app, f"/api/meters/e450/series?{query}")).json()
    assert [int(x["ts_ms"]) for x in rows] == plot["t"]


async def test_csv_of_an_aggregated_plot_equals_its_points(app: Any) -> None:
    query = f"key={VOLTAGE}&start={ms(BASE)}&end={ms(BASE + timedelta(days=10))}&points=50"
    plot = (await get(app, f"/api/meters/e450/series?{query}")).json()
    rows = list(csv.DictReader(io.StringIO((await get(app, f"/api/meters/e450/series.csv?{query}")).text)))
    assert [int(r["bucket_start_ms"]) for r in rows] == plot["t"]
    assert [float(r["min"]) for r in rows] == plot["min"]
    assert [float(r["avg"]) for r in rows] == plot["avg"]
    assert [float(r["max"]) for r in rows] == plot["max"]
    assert [int(r["count"]) for r in rows] == plot["count"]


def counter_at(rows: list[Reading], instant: datetime) -> Reading | None:
    good = [r for r in rows if r.timestamp <= instant and not (r.quality & Quality.NOT_MONOTONIC)]
    return good[-1] if good else None


def expected_energy(rows: list[Reading], start: datetime, end: datetime) -> Decimal | None:
    first = counter_at(rows, start)
    if first is None:
        inside = [r for r in rows if start <= r.timestamp < end and r.ok]
        first = inside[0] if inside else None
    last = counter_at(rows, end)
    if last is not None and last.timestamp < start and not any(r.timestamp >= end for r in rows):
        last = None  # the day lies after the newest reading
    if first is None or last is None:
        return None
    return Decimal(last.value) - Decimal(first.value)  # type: ignore[arg-type]


async def test_energy_per_day_is_the_counter_difference(app: Any, known: Any) -> None:
    body = (
        await get(app, "/api/meters/e450/energy?period=day&start=2026-02-28&end=2026-03-12&tz=UTC")
    ).json()
    assert body["keys"] == {"t1": T1, "t2": T2}
    assert body["unit"] == "Wh"
    labels = [b["label"] for b in body["buckets"]]
    assert labels[0] == "2026-02-28" and labels[-1] == "2026-03-12" and len(labels) == 13
    t1_rows, t2_rows = known.rows("e450", T1), known.rows("e450", T2)
    checked = 0
    for b in body["buckets"]:
        start = datetime.fromisoformat(b["label"]).replace(tzinfo=UTC)
        end = start + timedelta(days=1)
        e1, e2 = expected_energy(t1_rows, start, end), expected_energy(t2_rows, start, end)
        assert b["t1_text"] == (None if e1 is None else str(e1))
        assert b["t2_text"] == (None if e2 is None else str(e2))
        if e1 is not None and e2 is not None:
            assert Decimal(b["total_text"]) == e1 + e2
            checked += 1
    assert body["buckets"][0]["t1"] is None  # no reading yet on 28 February
    assert checked == 10  # 1-10 March
    assert (
        body["buckets"][11]["t1"] is None and body["buckets"][12]["total"] is None
    )  # after the last reading
    # the garbled 0 (NOT_MONOTONIC) on day 5 is not a boundary: no negative day anywhere
    assert all(b["t1"] is None or b["t1"] >= 0 for b in body["buckets"])


async def test_energy_days_follow_the_local_time_zone(app: Any, known: Any) -> None:
    body = await get(
        app, "/api/meters/e450/energy?period=day&start=2026-03-02&end=2026-03-03&tz=Europe/Vienna"
    )
    data = body.json()
    vienna = ZoneInfo("Europe/Vienna")
    for b in data["buckets"]:
        start = datetime.fromisoformat(b["label"]).replace(tzinfo=vienna)
        assert b["start"] == ms(start)
        assert b["t1_text"] == str(expected_energy(known.rows("e450", T1), start, start + timedelta(days=1)))


async def test_energy_per_month(app: Any, known: Any) -> None:
    body = (await get(app, "/api/meters/e450/energy?period=month&start=2026-01-01&end=2026-03-31")).json()
    assert [b["label"] for b in body["buckets"]] == ["2026-01", "2026-02", "2026-03"]
    march = body["buckets"][2]
    rows = known.rows("e450", T1)
    good = [r for r in rows if r.ok]
    assert Decimal(march["t1_text"]) == good[-1].value - good[0].value  # type: ignore[operator]
    for query in (
        "period=week",
        "register=3.8",
        "start=2026-13-01",
        "tz=Mars/Olympus",
        "start=2026-03-05&end=2026-03-01",
    ):
        assert (await get(app, f"/api/meters/e450/energy?{query}")).status_code == 400, query


async def test_event_filters(app: Any) -> None:
    all_events = (await get(app, "/api/events")).json()["events"]
    assert len(all_events) == 5
    assert [e["ts"] for e in all_events] == sorted((e["ts"] for e in all_events), reverse=True)
    e450 = (await get(app, "/api/events?meter=e450")).json()["events"]
    assert {e["meter_id"] for e in e450} == {"e450"} and len(e450) == 2
    raised = (await get(app, "/api/events?meter=e450&active=raised")).json()["events"]
    assert [e["message"] for e in raised] == ["voltage L1 above 253 V"]
    collisions = (await get(app, "/api/events?kind=bus_collisions")).json()["events"]
    assert len(collisions) == 2
    start = ms(BASE + timedelta(days=2, hours=1, minutes=30))
    late = (await get(app, f"/api/events?start={start}")).json()["events"]
    assert {e["message"] for e in late} == {"garbled reply 1", "status 0x04"}
    assert (await get(app, "/api/events?limit=1")).json()["events"] == all_events[:1]
    assert (await get(app, "/api/events?kind=gremlins")).status_code == 400
    assert (await get(app, "/api/events?active=maybe")).status_code == 400


async def test_bus_view_counts_collisions_and_errors(app: Any) -> None:
    buses = (await get(app, "/api/bus")).json()["buses"]
    by_name = {b["name"]: b["meters"] for b in buses}
    assert set(by_name) == {"mbus /dev/ttyAMA0", "optical"}
    heat = by_name["mbus /dev/ttyAMA0"][0]
    assert heat["address"] == "/dev/ttyAMA0#7" and heat["serial"] == "12345678"
    assert (heat["collisions"], heat["errors"], heat["silent"]) == (2, 1, 0)
    assert by_name["optical"][0]["collisions"] == 0


async def test_reports_are_listed_and_open(app: Any) -> None:
    reports = (await get(app, "/api/reports")).json()["reports"]
    assert sorted(r["name"] for r in reports) == [
        "check-20260301T120000Z.html",
        "check-20260301T120000Z.json",
    ]
    html = await get(app, "/reports/check-20260301T120000Z.html")
    assert html.status_code == 200 and "Commissioning report" in html.text
    assert html.headers["content-type"].startswith("text/html")
    assert (await get(app, "/reports/check-20260301T120000Z.json")).json() == {"verdict": "pass"}
    for bad in ("notes.txt", "..%2Fstore.sqlite", "%2E%2E", "missing.html"):
        assert (await get(app, f"/reports/{bad}")).status_code == 404, bad
    page = await get(app, "/reports")
    assert 'href="/reports/check-20260301T120000Z.html"' in page.text


async def test_pages_render_the_same_data(app: Any) -> None:
    overview = (await get(app, "/")).text
    assert 'data-meter="e450"' in overview and "House E450" in overview
    meter = (await get(app, "/meters/e450")).text
    assert f'data-key="{VOLTAGE}"' in meter and "Energy per day" in meter
    assert (await get(app, "/meters/nope")).status_code == 404
    events = (await get(app, "/events?kind=bus_collisions")).text
    assert events.count("garbled reply") == 2
    assert (await get(app, "/events?kind=gremlins")).status_code == 400
    bus = (await get(app, "/bus")).text
    assert "12345678" in bus
    for path in ("/", "/meters/e450", "/events", "/bus", "/reports"):
        r = await get(app, path)
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
        assert r.headers["referrer-policy"] == "no-referrer"


async def test_payload_stays_small_for_any_range(known: Any) -> None:
    # a year of 30-minute readings with full-precision floats: the worst case for JSON size per point
    start = datetime(2025, 1, 1, tzinfo=UTC)
    step = timedelta(minutes=30)
    readings = [
        Reading(
            "big",
            "mbus/0/power/instantaneous/s0/t0/u0",
            1234.56789 + (i * 0.1234567891) % 97,
            "W",
            start + i * step,
        )
        for i in range(365 * 48)
    ]
    for i in range(0, len(readings), 5000):
        known.store.add(readings[i : i + 5000])
    app = create_app(known.store)
    key = readings[0].key_text
    end = start + timedelta(days=365)
    for span in (timedelta(hours=1), timedelta(days=1), timedelta(days=31), timedelta(days=365)):
        for points in (1000, MAX_POINTS):
            r = await get(
                app, f"/api/meters/big/series?key={key}&start={ms(end - span)}&end={ms(end)}&points={points}"
            )
            assert r.status_code == 200
            assert len(r.content) < 200_000, (span, points, len(r.content))
            assert len(r.json()["t"]) <= points


async def test_openapi_document_is_valid_and_complete(app: Any) -> None:
    doc = (await get(app, "/api/openapi.json")).json()
    validate(doc)
    documented = set(doc["paths"])
    served = {
        r.path.replace(":str}", "}")
        for r in app.routes
        if isinstance(r, Route) and r.path.startswith("/api/")
    }
    assert served - {"/api/openapi.json"} == documented


async def test_token_guards_everything_but_health(known: Any) -> None:
    app = create_app(known.store, token="s3cret-token")
    assert (await get(app, "/api/meters")).status_code == 401
    assert (await get(app, "/")).status_code == 401
    assert (await get(app, "/api/meters", headers={"Authorization": "Bearer wrong-token"})).status_code == 401
    assert (await get(app, "/api/meters?token=s3cret-tokeX")).status_code == 401
    ok = await get(app, "/api/meters", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert (await get(app, "/healthz")).status_code == 200
    assert (await get(app, "/static/app.css")).status_code == 200
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        first = await client.get("/?token=s3cret-token")
        assert first.status_code == 200
        assert "HttpOnly" in first.headers["set-cookie"]
        # the browser's follow-up requests carry the cookie only
        assert (await client.get("/api/meters/e450")).status_code == 200
    with pytest.raises(ConfigError):
        create_app(known.store, token="short")


def test_binding_beyond_loopback_needs_a_token() -> None:
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("localhost", None)
    check_bind("0.0.0.0", "a-long-token")
    for host in ("0.0.0.0", "192.168.1.20", "::"):
        with pytest.raises(ConfigError, match="token"):
            check_bind(host, None)


async def test_health_and_metrics(app: Any, known: Any) -> None:
    known.store.register_sink("mqtt")
    health = (await get(app, "/healthz")).json()
    assert health["status"] == "ok" and health["outbox_depth"] == 0
    text = (await get(app, "/metrics")).text
    assert 'meterbridge_outbox_depth{sink="mqtt"} 0.0' in text
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    seen = samples['meterbridge_meter_last_seen_timestamp_seconds{meter="e450"}']
    assert float(seen) == (BASE + timedelta(minutes=15 * 959)).timestamp()
    assert 'meterbridge_meter_events{kind="bus_collisions",meter="heat-7"} 2.0' in text
    assert 'meterbridge_meter_active_events{kind="meter_error",meter="heat-7"} 1.0' in text
    # the voltage event was cleared afterwards: not active
    assert 'meterbridge_meter_active_events{kind="voltage"' not in text


async def test_json_never_carries_nan(app: Any, known: Any) -> None:
    known.store.add([Reading("e450", "weird/nan", float("nan"), None, BASE)])
    body = json.loads((await get(app, "/api/meters/e450")).text)
    weird = next(q for q in body["quantities"] if q["key"] == "weird/nan")
    assert weird["value"] is None and weird["text"] == "nan"


async def test_consumption_of_one_counter(app: Any, known: Any) -> None:
    detail = (await get(app, "/api/meters/heat-7")).json()
    assert detail["tariffs"] == {} and detail["consumption_key"] == HEAT_KEY
    assert (await get(app, "/api/meters/e450")).json()["consumption_key"] is None
    body = (
        await get(app, f"/api/meters/heat-7/energy?key={HEAT_KEY}&start=2026-03-02&end=2026-03-03")
    ).json()
    assert body["keys"] == {"total": HEAT_KEY} and body["unit"] == "kWh"
    rows = known.rows("heat-7", HEAT_KEY)
    for b in body["buckets"]:
        start = datetime.fromisoformat(b["label"]).replace(tzinfo=UTC)
        e = expected_energy(rows, start, start + timedelta(days=1))
        assert b["total_text"] == str(e) and e is not None and e > 0
    assert (await get(app, f"/api/meters/e450/energy?key={VOLTAGE}")).status_code == 400  # not a counter
    assert (await get(app, "/api/meters/e450/energy?key=nope")).status_code == 404
    page = (await get(app, "/meters/heat-7")).text
    assert "Consumption per day" in page and f'data-key="{HEAT_KEY}"' in page


async def test_flagged_readings_are_left_out_of_plots_unless_asked(app: Any, known: Any) -> None:
    start, end = BASE + timedelta(days=5), BASE + timedelta(days=6)  # holds the garbled 0 of T1
    query = f"key={T1}&start={ms(start)}&end={ms(end)}"
    clean = (await get(app, f"/api/meters/e450/series?{query}")).json()
    every = (await get(app, f"/api/meters/e450/series?{query}&flagged=1")).json()
    assert clean["flagged"] is False and every["flagged"] is True
    assert min(clean["value"]) > 0 and min(every["value"]) == 0
    assert every["total"] == clean["total"] + 1
    rows = list(
        csv.DictReader(io.StringIO((await get(app, f"/api/meters/e450/series.csv?{query}&flagged=1")).text))
    )
    assert [r["quality"] for r in rows].count("not_monotonic") == 1
    stored = known.store.readings("e450", T1, start, end)
    assert [r["value"] for r in rows] == [str(x.value) for x in stored]
    # aggregated too: the minimum of the bucket holding the glitch
    agg = (await get(app, f"/api/meters/e450/series?{query}&points=10")).json()
    agg_all = (await get(app, f"/api/meters/e450/series?{query}&points=10&flagged=1")).json()
    assert min(agg["min"]) > 0 and min(agg_all["min"]) == 0
    assert (await get(app, f"/api/meters/e450/series?{query}&flagged=maybe")).status_code == 400
