"""``meterbridge scan`` / ``read mbus`` / ``simulate mbus`` against a simulated bus over TCP."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import meterbridge.cli.read
import meterbridge.cli.scan
import meterbridge.cli.simulate  # noqa: F401  (registers the commands on the app)
from meterbridge.cli.app import app
from meterbridge.simulator.mbus import MBusSimulator

runner = CliRunner()


def test_scan_primary_json_reports_collision(bus: tuple[MBusSimulator, int], tmp_path: Path) -> None:
    sim, port = bus
    log = tmp_path / "frames.log"
    result = runner.invoke(
        app,
        ["scan", f"tcp://127.0.0.1:{port}", "--from", "0", "--to", "3", "--json", "--log-frames", str(log)],
    )
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert [e["address"] for e in outcome["found"]] == [1, 2]
    assert outcome["collisions"] == [2]
    assert outcome["found"][0]["secondary"] == str(sim.slaves[0].secondary)
    text = log.read_text()
    assert " tx " in text and "10 40 00 40 16" in text.lower()


def test_scan_secondary_table(bus: tuple[MBusSimulator, int]) -> None:
    sim, port = bus
    result = runner.invoke(app, ["scan", f"tcp://127.0.0.1:{port}", "--secondary"])
    assert result.exit_code == 0, result.output
    for slave in sim.slaves:
        assert str(slave.secondary) in result.stdout
    assert "3 found" in result.stdout


def test_read_mbus_json_and_table(bus: tuple[MBusSimulator, int]) -> None:
    sim, port = bus
    result = runner.invoke(app, ["read", "mbus", f"tcp://127.0.0.1:{port}", "1", "--json"])
    assert result.exit_code == 0, result.output
    telegrams = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(telegrams) >= 2 and telegrams[0]["more_records_follow"] is True
    assert telegrams[0]["id"] == sim.slaves[0].secondary.identification
    secondary = str(sim.slaves[2].secondary)
    result = runner.invoke(app, ["read", "mbus", f"tcp://127.0.0.1:{port}", secondary])
    assert result.exit_code == 0, result.output
    assert sim.slaves[2].secondary.identification in result.stdout


def test_read_collision_is_an_error(bus: tuple[MBusSimulator, int]) -> None:
    _, port = bus
    result = runner.invoke(app, ["read", "mbus", f"tcp://127.0.0.1:{port}", "2"])
    assert result.exit_code == 2
    assert "error:" in result.stderr


def test_bad_arguments() -> None:
    assert runner.invoke(app, ["read", "mbus", "tcp://127.0.0.1:1", "999"]).exit_code != 0
    assert runner.invoke(app, ["scan", "tcp://127.0.0.1:1", "--from", "9", "--to", "3"]).exit_code != 0
    assert runner.invoke(app, ["simulate", "mbus"]).exit_code != 0
    assert runner.invoke(app, ["simulate", "mbus", "--tcp", "x", "--meters", "300"]).exit_code != 0
