"""The gateway's everyday commands: config check/example, run refusing a bad file, export, status."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterbridge.cli import _load_commands, app
from meterbridge.cli.demo import demo_config
from meterbridge.gateway.config import EXAMPLE, parse_config
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.store import MeterInfo, QualityEvent, open_store

_load_commands()
runner = CliRunner()
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    path = str(tmp_path / "s.sqlite")
    with open_store(path) as s:
        s.register_sink("mqtt")
        s.add(
            [
                Reading("m1", ObisCode.parse("1.8.0"), Decimal("1234.567"), "kWh", T0 + timedelta(hours=h))
                for h in range(5)
            ]
            + [Reading("m2", "mbus/0/volume/instantaneous/s0/t0/u0", 7, "m3", T0, Quality.OUT_OF_RANGE)]
        )
        s.upsert_meter(
            MeterInfo(id="m1", name="House", protocol="optical", last_seen=T0 + timedelta(hours=4))
        )
        s.add_event(
            QualityEvent(meter_id="m1", kind="voltage", key="1-0:32.7.0.255", message="V high", timestamp=T0)
        )
        s.add_event(
            QualityEvent(meter_id="m1", kind="thd", key="1-0:32.7.124.255", message="THD", timestamp=T0)
        )
        s.add_event(
            QualityEvent(
                meter_id="m1", kind="thd", key="1-0:32.7.124.255", message="ok", timestamp=T0, active=False
            )
        )
    return path


def test_config_example_and_check(tmp_path: Path) -> None:
    result = runner.invoke(app, ["config", "example"])
    assert result.exit_code == 0 and result.stdout == EXAMPLE
    good = tmp_path / "good.yaml"
    good.write_text("store: {url: var/x.sqlite}\nweb: {port: 9000}\n")
    result = runner.invoke(app, ["config", "check", str(good)])
    assert result.exit_code == 0
    assert (
        "valid - 0 meters, 0 buses, store var/x.sqlite, mqtt off, web http://127.0.0.1:9000/" in result.stdout
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("web:\n  port: 99999\n  token: {env: NOT_SET_ANYWHERE_XYZ}\n")
    result = runner.invoke(app, ["config", "check", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2 web.port: Input should be less than or equal to 65535 (got 99999)" in result.stderr
    assert f"{bad}:3 web.token: environment variable NOT_SET_ANYWHERE_XYZ is not set" in result.stderr


def test_run_refuses_to_start_on_a_bad_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "meters:\n  - id: x\n    protocol: optical\n    transport: tcp://127.0.0.1:1\n    intervall: 5\n"
    )
    result = runner.invoke(app, ["run", "--config", str(bad)])
    assert result.exit_code == 2
    assert (
        "refusing to start" in result.stderr and f"{bad}:5 meters[0].intervall: unknown key" in result.stderr
    )


def test_export_csv_is_exact_and_respects_the_range(store_path: str) -> None:
    result = runner.invoke(
        app, ["export", "--store", store_path, "--from", "2026-03-01T01:00", "--to", "2026-03-01T03:00"]
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["timestamp"] for r in rows] == ["2026-03-01T01:00:00+00:00", "2026-03-01T02:00:00+00:00"]
    assert rows[0]["value"] == "1234.567" and rows[0]["unit"] == "kWh" and rows[0]["key"] == "1-0:1.8.0.255"


def test_export_jsonl_with_meter_filter_and_flags(store_path: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = runner.invoke(
        app,
        [
            "export",
            "--store",
            store_path,
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-02",
            "--meter",
            "m2",
            "--format",
            "jsonl",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [
        {
            "timestamp": "2026-03-01T00:00:00+00:00",
            "meter_id": "m2",
            "key": "mbus/0/volume/instantaneous/s0/t0/u0",
            "name": None,
            "value": 7,
            "value_type": "int",
            "unit": "m3",
            "quality": ["out_of_range"],
        }
    ]
    assert "1 readings written" in result.stderr


def test_export_rejects_bad_arguments(store_path: str, tmp_path: Path) -> None:
    assert (
        runner.invoke(
            app, ["export", "--store", store_path, "--from", "yesterday", "--to", "2026-03-02"]
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(
            app, ["export", "--store", store_path, "--from", "2026-03-02", "--to", "2026-03-01"]
        ).exit_code
        == 2
    )
    r = runner.invoke(
        app,
        ["export", "--store", store_path, "--from", "2026-03-01", "--to", "2026-03-02", "--format", "xml"],
    )
    assert r.exit_code == 2
    r = runner.invoke(
        app,
        ["export", "--store", str(tmp_path / "none.sqlite"), "--from", "2026-03-01", "--to", "2026-03-02"],
    )
    assert r.exit_code == 1 and "no store" in r.stderr


def test_status_json(store_path: str) -> None:
    result = runner.invoke(app, ["status", "--store", store_path, "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outbox"] == {"mqtt": 6}
    m1 = next(m for m in data["meters"] if m["id"] == "m1")
    assert m1["name"] == "House" and m1["registers"] == 1 and m1["last_seen"] == "2026-03-01T04:00:00+00:00"
    # the THD problem was cleared, the voltage problem is still active
    assert [(p["meter_id"], p["kind"]) for p in data["problems"]] == [("m1", "voltage")]
    table = runner.invoke(app, ["status", "--store", store_path])
    assert table.exit_code == 0 and "mqtt 6 waiting" in table.stdout and "voltage" in table.stdout


def test_demo_configuration_validates() -> None:
    config = parse_config(
        demo_config(
            optical=1, push=2, mbus=3, store="var/d.sqlite", mqtt="mqtt://127.0.0.1:1883", web_port=8450
        )
    )
    assert [m.protocol for m in config.meters] == ["optical", "push"]
    assert config.buses[0].scan.address_list() == list(range(13))
    assert config.sinks.mqtt is not None
    assert (
        parse_config(demo_config(optical=1, push=2, mbus=3, store="x", mqtt=None, web_port=1)).sinks.mqtt
        is None
    )
