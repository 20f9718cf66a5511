"""Overview and meter page: every live value of a push (or "N more"), M-Bus names, identifiers as text,
a meter not read yet is "waiting for first reading"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from meterbridge.protocols.mbus import decode_frame, decode_response
from meterbridge.protocols.mbus.readings import to_readings
from meterbridge.readings import Reading
from meterbridge.sinks.store import MeterInfo, open_store
from meterbridge.web import create_app

FRAMES = Path(__file__).resolve().parents[1] / "vectors" / "mbus-libmbus" / "test-frames"
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
E450_PUSH = [  # the 13 values of an E450 compact push
    "1-0:1.8.0.255", "1-0:2.8.0.255", "1-0:1.8.1.255", "1-0:1.8.2.255", "1-0:2.8.1.255", "1-0:2.8.2.255",
    "1-0:1.7.0.255", "1-0:2.7.0.255", "1-0:32.7.0.255", "1-0:52.7.0.255", "1-0:72.7.0.255",
    "1-0:31.7.0.255", "1-0:51.7.0.255",
]  # fmt: skip


async def _get(app: Any, url: str) -> Any:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    return response


def _app(tmp_path: Path) -> Any:
    store = open_store(str(tmp_path / "store.sqlite"))
    store.add([Reading("e450", key, i + 1, "Wh", NOW) for i, key in enumerate(E450_PUSH)])
    store.add([Reading("big", f"mbus/{i}/volume/instantaneous/s{i}/t0/u0", i, "m³", NOW) for i in range(20)])
    frame = bytes.fromhex((FRAMES / "kamstrup_multical_601.hex").read_text())
    store.add(to_readings(decode_response(decode_frame(frame)), timestamp=NOW, meter="heat"))
    for meter in ("e450", "big", "heat", "bus-meter"):
        store.upsert_meter(MeterInfo(id=meter, protocol="mbus" if meter != "e450" else "dlms"))
    return create_app(store)


async def test_overview_shows_all_13_push_values_and_n_more(tmp_path: Path) -> None:
    app = _app(tmp_path)
    meters = {m["id"]: m for m in (await _get(app, "/api/meters")).json()["meters"]}
    assert {v["key"] for v in meters["e450"]["values"]} == set(E450_PUSH)
    assert meters["e450"]["more_values"] == 0
    assert len(meters["big"]["values"]) == 16 and meters["big"]["more_values"] == 4
    assert [v["key"].split("/")[1] for v in meters["big"]["values"]][:3] == ["0", "1", "2"]  # natural order
    html = (await _get(app, "/")).text
    assert "4 more values on the meter page" in html


async def test_meter_without_reading_is_waiting_for_first_reading(tmp_path: Path) -> None:
    app = _app(tmp_path)
    meters = {m["id"]: m for m in (await _get(app, "/api/meters")).json()["meters"]}
    assert meters["bus-meter"]["state_detail"] == "waiting for first reading"
    assert "waiting for first reading" in (await _get(app, "/")).text


async def test_mbus_names_and_identifiers_as_text(tmp_path: Path) -> None:
    app = _app(tmp_path)
    detail = (await _get(app, "/api/meters/heat")).json()
    by_key = {q["key"]: q for q in detail["quantities"]}
    fab = by_key["mbus/0/fabrication_number/instantaneous/s0/t0/u0"]
    assert fab["name"] == "Fabrication number"
    assert fab["text"] == "06855817" and fab["value"] is None and fab["numeric"] is False
    assert by_key["mbus/1/energy/instantaneous/s0/t0/u0"]["name"] == "Energy"
    assert by_key["mbus/11/energy/instantaneous/s0/t1/u0"]["name"] == "Energy (tariff 1)"
    overview = {m["id"]: m for m in (await _get(app, "/api/meters")).json()["meters"]}["heat"]
    assert "mbus/0/fabrication_number/instantaneous/s0/t0/u0" not in {v["key"] for v in overview["values"]}
    page = (await _get(app, "/meters/heat")).text
    assert 'data-key="mbus/0/fabrication_number' not in page  # no plot of a text value
    assert 'data-key="mbus/11/energy/instantaneous/s0/t1/u0"' in page
    start, end = (
        int((NOW - timedelta(hours=1)).timestamp() * 1000),
        int((NOW + timedelta(hours=1)).timestamp() * 1000),
    )
    series = (
        await _get(
            app, f"/api/meters/heat/series?key=mbus/11/energy/instantaneous/s0/t1/u0&start={start}&end={end}"
        )
    ).json()
    assert series["name"] == "Energy (tariff 1)"
