"""The dashboard in headless Chromium (Playwright), served by uvicorn on a free loopback port.

Screenshots go to artifacts/screenshots/ (gitignored) for people to look at.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading

pytestmark = pytest.mark.browser

T1, T2 = "1-0:1.8.1.255", "1-0:1.8.2.255"
VOLTAGE = "1-0:32.7.0.255"


def watch_console(page: Any) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def test_overview_values_update_live(served: Any, browser_page: Any, screenshots: Path) -> None:
    page = browser_page
    problems = watch_console(page)
    page.goto(served.url + "/")
    page.wait_for_function("() => document.getElementById('live-status').textContent.includes('connected')")
    cell = page.locator(f'tr[data-meter="e450"] div[data-key="{VOLTAGE}"] .v')
    before = cell.text_content()
    events_before = page.evaluate("window.meterbridge.live.events")
    last = served.known.rows("e450", VOLTAGE)[-1]
    served.known.store.add(
        [Reading("e450", ObisCode.parse(VOLTAGE), 239.125, "V", last.timestamp + timedelta(minutes=15))]
    )
    page.wait_for_function(
        f"""() => document.querySelector('tr[data-meter="e450"] div[data-key="{VOLTAGE}"] .v').textContent === '239.125'"""
    )
    assert before != "239.125"
    assert page.evaluate("window.meterbridge.live.events") > events_before
    seen = page.locator('tr[data-meter="e450"] .seen time').get_attribute("datetime")
    assert seen is not None
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)
    assert not problems, problems


def test_overview_fits_a_phone(served: Any, browser_page: Any, screenshots: Path) -> None:
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(served.url + "/")
    page.wait_for_selector('tr[data-meter="e450"]')
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(screenshots / "overview-phone.png"), full_page=True)
    page.goto(served.url + "/meters/e450")
    page.wait_for_function("() => (window.meterbridge.ready || 0) >= 1")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(screenshots / "meter-phone.png"), full_page=True)


def test_meter_plots_render_with_data(served: Any, browser_page: Any, screenshots: Path) -> None:
    page = browser_page
    problems = watch_console(page)
    page.goto(served.url + "/meters/e450")
    page.wait_for_function("() => (window.meterbridge.ready || 0) >= 1")
    lengths = page.evaluate(
        "Object.fromEntries(Object.entries(window.meterbridge.charts).map(([k, u]) => [k, u.data[0].length]))"
    )
    assert lengths[VOLTAGE] == 96  # the last day of 15-minute readings (raw points)
    # the canvas holds drawn pixels, not a blank area
    inked = page.evaluate(
        """(key) => {
        const fig = document.querySelector(`figure.plot[data-key="${key}"] canvas`);
        const px = fig.getContext('2d').getImageData(0, 0, fig.width, fig.height).data;
        let n = 0; for (let i = 3; i < px.length; i += 4) if (px[i] > 0) n++;
        return n; }""",
        VOLTAGE,
    )
    assert inked > 500
    summary = page.locator(f'figure.plot[data-key="{VOLTAGE}"] .summary').text_content()
    assert summary is not None and "96 readings" in summary and "minimum" in summary
    # a week: still 672 raw readings at 1000 points
    page.click('button[data-range="week"]')
    page.wait_for_function("() => (window.meterbridge.ready || 0) >= 2")
    assert page.evaluate(f"window.meterbridge.series['{VOLTAGE}'].total") == 7 * 96
    page.screenshot(path=str(screenshots / "meter.png"), full_page=True)
    assert not problems, problems


def test_zoom_fetches_the_selected_range(served: Any, browser_page: Any) -> None:
    page = browser_page
    page.goto(served.url + "/meters/e450")
    page.wait_for_function("() => (window.meterbridge.ready || 0) >= 1")
    over = page.locator(f'figure.plot[data-key="{VOLTAGE}"] .u-over')
    over.scroll_into_view_if_needed()
    box = over.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    page.wait_for_function("() => (window.meterbridge.ready || 0) >= 2")
    series = page.evaluate(f"window.meterbridge.series['{VOLTAGE}']")
    assert series["end"] - series["start"] < 86_400_000 / 2
    assert page.locator("#zoom-reset").is_visible()


def counter_at(rows: list[Reading], instant: datetime) -> Reading | None:
    good = [r for r in rows if r.timestamp <= instant and not (r.quality & Quality.NOT_MONOTONIC)]
    return good[-1] if good else None


def test_day_energy_bars_equal_the_counter_differences(
    served: Any, browser_page: Any, screenshots: Path
) -> None:
    page = browser_page
    page.goto(served.url + "/meters/e450")
    page.wait_for_function("() => window.meterbridge.charts['energy-day'] !== undefined")
    energy = page.evaluate("window.meterbridge.energy.day")
    bars = page.evaluate("window.meterbridge.charts['energy-day'].data")
    rows = {"t1": served.known.rows("e450", T1), "t2": served.known.rows("e450", T2)}
    compared = 0
    for i, bucket in enumerate(energy["buckets"]):
        start = datetime.fromtimestamp(bucket["start"] / 1000, UTC)
        end = datetime.fromtimestamp(bucket["end"] / 1000, UTC)
        expected: dict[str, Decimal] = {}
        for role in ("t1", "t2"):
            a = counter_at(rows[role], start)
            if a is None:
                inside = [r for r in rows[role] if start <= r.timestamp < end and r.ok]
                a = inside[0] if inside else None
            b = counter_at(rows[role], end)
            if a is not None and b is not None:
                expected[role] = Decimal(b.value) - Decimal(a.value)  # type: ignore[arg-type]
        if len(expected) < 2:
            assert bars[1][i] is None
            continue
        compared += 1
        # the bar heights (kWh): total = T1 + T2 drawn behind, T1 in front
        assert bars[2][i] == pytest.approx(float(expected["t1"]) / 1000, abs=1e-9)
        assert bars[1][i] == pytest.approx(float(expected["t1"] + expected["t2"]) / 1000, abs=1e-9)
        # and the accessible table says the same
        cells = page.locator(f'section.energy[data-period="day"] tr[data-label="{bucket["label"]}"] td')
        shown_t1 = float((cells.nth(0).text_content() or "").replace(",", ""))
        assert shown_t1 == pytest.approx(float(expected["t1"]) / 1000, abs=0.0005 + 1e-9)  # 3 decimals shown
    assert compared >= 10
    page.locator('section.energy[data-period="day"]').screenshot(path=str(screenshots / "energy-day.png"))


def test_csv_download_equals_the_stored_rows(served: Any, browser_page: Any) -> None:
    page = browser_page
    page.goto(served.url + "/meters/e450")
    page.wait_for_function("() => (window.meterbridge.ready || 0) >= 1")
    shown = page.evaluate(f"window.meterbridge.series['{T1}']")
    with page.expect_download() as info:
        page.locator(f'figure.plot[data-key="{T1}"] a.csv').click()
    text = Path(info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    start = datetime.fromtimestamp(shown["start"] / 1000, UTC)
    end = datetime.fromtimestamp(shown["end"] / 1000, UTC)
    stored = served.known.store.readings("e450", T1, start, end)
    assert len(rows) == len(stored) == len(shown["t"]) > 0
    for row, reading in zip(rows, stored, strict=True):
        assert row["value"] == str(reading.value)
        assert int(row["ts_ms"]) == int(reading.timestamp.timestamp() * 1000)
        assert row["quality"] == "|".join(reading.quality.names)


def test_commissioning_report_opens(served: Any, browser_page: Any, screenshots: Path) -> None:
    page = browser_page
    page.goto(served.url + "/reports")
    page.get_by_role("link", name="check-20260301T120000Z.html").click()
    page.wait_for_selector("#verdict")
    assert page.locator("h1").text_content() == "Commissioning report"
    assert page.locator("#verdict").text_content() == "PASS"
    page.goto(served.url + "/reports")
    page.screenshot(path=str(screenshots / "reports.png"))


def test_pages_are_labelled_for_screen_readers(served: Any, browser_page: Any, screenshots: Path) -> None:
    page = browser_page
    for path in ("/", "/meters/e450", "/events", "/bus", "/reports"):
        page.goto(served.url + path)
        assert page.evaluate("document.documentElement.lang") == "en"
        unlabeled = page.evaluate(
            """[...document.querySelectorAll('input, select')].filter(e =>
                !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.id || e.name)"""
        )
        assert unlabeled == [], (path, unlabeled)
        assert page.evaluate("[...document.querySelectorAll('table')].every(t => t.querySelector('th'))")
        assert page.locator("main h1").count() == 1
    page.goto(served.url + "/events")
    page.screenshot(path=str(screenshots / "events.png"), full_page=True)
    page.goto(served.url + "/bus")
    page.screenshot(path=str(screenshots / "bus.png"), full_page=True)


def test_sse_stream_over_http(served: Any) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client, client.stream("GET", "/api/stream") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        meters: set[str] = set()
        for line in r.iter_lines():
            if line.startswith("data: "):
                meters.add(line[6:].split('"id":"', 1)[1].split('"', 1)[0])
            if meters == {"e450", "heat-7"}:
                break


def test_heat_meter_shows_consumption_bars(served: Any, browser_page: Any, screenshots: Path) -> None:
    page = browser_page
    problems = watch_console(page)
    page.goto(served.url + "/meters/heat-7")
    page.wait_for_function("() => window.meterbridge.charts['energy-day'] !== undefined")
    bars = page.evaluate("window.meterbridge.charts['energy-day'].data")
    values = [v for v in bars[1] if v is not None]
    assert len(values) >= 9 and all(v >= 0 for v in values) and sum(values) > 0
    assert page.locator('section.energy[data-period="day"] .unit-head').text_content() == "Consumption (kWh)"
    page.locator('section.energy[data-period="day"]').screenshot(
        path=str(screenshots / "heat-consumption.png")
    )
    assert not problems, problems
