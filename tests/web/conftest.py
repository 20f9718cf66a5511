"""Fixtures of the dashboard tests: a store filled with known data (written through ``Store.add``), the
expected values computed independently from that data, and the app served by uvicorn on a free port."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.store import MeterInfo, QualityEvent, Store, open_store
from meterbridge.web import build_server, create_app

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

BASE = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
STEPS = 10 * 96  # ten days of 15-minute readings
T1 = "1-0:1.8.1.255"
T2 = "1-0:1.8.2.255"
TOTAL = "1-0:1.8.0.255"
VOLTAGE = "1-0:32.7.0.255"
POWER = "1-0:1.7.0.255"
HEAT_KEY = "mbus/0/energy/instantaneous/s0/t0/u0"
GARBLED_AT = 500  # index of a counter reading flagged NOT_MONOTONIC with value 0


@dataclass
class KnownData:
    store: Store
    path: Path
    readings: list[Reading]

    def rows(self, meter_id: str, key: str) -> list[Reading]:
        return sorted(
            (r for r in self.readings if r.meter_id == meter_id and r.key_text == key),
            key=lambda r: r.timestamp,
        )


def e450_readings(start: datetime = BASE, steps: int = STEPS) -> list[Reading]:
    """Counters that rise by a load depending on the hour (T1 from 06:00 to 22:00, T2 at night), a voltage
    with three decimals, a power in W."""
    out: list[Reading] = []
    t1 = Decimal("1000000.0")
    t2 = Decimal("500000.0")
    for i in range(steps):
        when = start + i * STEP
        load = Decimal(150 + (i * 37) % 400) / 4  # Wh per 15 min
        if 6 <= when.hour < 22:
            t1 += load
        else:
            t2 += load
        out.append(Reading("e450", ObisCode.parse(T1), t1, "Wh", when))
        out.append(Reading("e450", ObisCode.parse(T2), t2, "Wh", when))
        out.append(Reading("e450", ObisCode.parse(TOTAL), t1 + t2, "Wh", when))
        out.append(Reading("e450", ObisCode.parse(VOLTAGE), 228.0 + ((i * 7919) % 900) / 200, "V", when))
        out.append(Reading("e450", ObisCode.parse(POWER), int(load * 4), "W", when))
        if i == GARBLED_AT:
            glitch = when + timedelta(minutes=1)
            out.append(Reading("e450", ObisCode.parse(T1), Decimal(0), "Wh", glitch, Quality.NOT_MONOTONIC))
    return out


def heat_readings(start: datetime = BASE, steps: int = STEPS) -> list[Reading]:
    return [
        Reading("heat-7", HEAT_KEY, Decimal(12000 + i * 3), "kWh", start + i * STEP)
        for i in range(0, steps, 4)
    ]


def fill(store: Store, start: datetime = BASE) -> list[Reading]:
    readings = e450_readings(start) + heat_readings(start)
    for i in range(0, len(readings), 2000):
        store.add(readings[i : i + 2000])
    store.upsert_meter(
        MeterInfo(
            id="e450",
            name="House E450",
            kind="electricity",
            protocol="optical",
            address="/dev/ttyUSB0",
            serial="71234567",
            manufacturer="LGZ",
            firmware="B31",
        )
    )
    store.upsert_meter(
        MeterInfo(
            id="heat-7",
            name="Heat flat 7",
            kind="heat",
            protocol="mbus",
            address="/dev/ttyAMA0#7",
            serial="12345678",
            manufacturer="KAM",
        )
    )
    end = start + (STEPS - 1) * STEP
    store.touch_meter("e450", end)
    store.touch_meter("heat-7", end)
    ev = start + timedelta(days=2)
    store.add_event(
        QualityEvent(
            meter_id="e450",
            kind="voltage",
            key=VOLTAGE,
            value=Decimal("254.1"),
            threshold=Decimal("253"),
            message="voltage L1 above 253 V",
            timestamp=ev,
        )
    )
    store.add_event(
        QualityEvent(
            meter_id="e450",
            kind="voltage",
            key=VOLTAGE,
            value=Decimal("231"),
            threshold=Decimal("253"),
            message="voltage L1 back in band",
            timestamp=ev + timedelta(minutes=30),
            active=False,
        )
    )
    for k in range(2):
        store.add_event(
            QualityEvent(
                meter_id="heat-7",
                kind="bus_collisions",
                message=f"garbled reply {k}",
                timestamp=ev + timedelta(hours=k + 1),
            )
        )
    store.add_event(
        QualityEvent(
            meter_id="heat-7", kind="meter_error", message="status 0x04", timestamp=ev + timedelta(hours=5)
        )
    )
    return readings


@pytest.fixture
def known(tmp_path: Path) -> Iterator[KnownData]:
    path = tmp_path / "store.sqlite"
    store = open_store(str(path))
    readings = fill(store)
    yield KnownData(store, path, readings)
    store.close()


@pytest.fixture
def known_pg(request: pytest.FixtureRequest) -> Iterator[KnownData]:
    """The same known data in a PostgreSQL store (a schema of its own; skipped outside CI without a server)."""
    dsn = request.getfixturevalue("postgres_dsn")
    store = open_store(dsn)
    readings = fill(store)
    yield KnownData(store, Path(), readings)
    store.close()


@pytest.fixture
def recent(tmp_path: Path) -> Iterator[KnownData]:
    """The same data, ending at the last quarter hour before now (so that the default ranges show it)."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    end = now - timedelta(minutes=now.minute % 15)
    path = tmp_path / "recent.sqlite"
    store = open_store(str(path))
    readings = fill(store, end - (STEPS - 1) * STEP)
    yield KnownData(store, path, readings)
    store.close()


@pytest.fixture
def reports_dir(tmp_path: Path) -> Path:
    d = tmp_path / "reports"
    d.mkdir()
    (d / "check-20260301T120000Z.html").write_text(
        "<!doctype html><html lang=en><title>Commissioning report</title><h1>Commissioning report</h1>"
        "<p id=verdict>PASS</p></html>",
        encoding="utf-8",
    )
    (d / "check-20260301T120000Z.json").write_text('{"verdict": "pass"}', encoding="utf-8")
    (d / "notes.txt").write_text("not a report", encoding="utf-8")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    known: KnownData


@pytest.fixture
def served(recent: KnownData, reports_dir: Path) -> Iterator[Served]:
    """The dashboard over the recent store, served by uvicorn on a free loopback port in a thread."""
    known = recent
    app = create_app(known.store, reports_dir=reports_dir, live_interval=0.2)
    port = free_port()
    server = build_server(app, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield Served(f"http://127.0.0.1:{port}", known)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """The system's headless Chromium driven by Playwright, one per test module (skipped outside CI when it
    is missing, a failure in CI)."""
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is missing (CI must install the Debian package chromium)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[object]:
    """A fresh page (own context: no cookies shared between tests)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
