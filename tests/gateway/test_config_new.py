"""``meterbridge config new``: a small configuration that validates, for the meters the user has."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterbridge.cli import _load_commands
from meterbridge.cli.app import app
from meterbridge.gateway.config import load_config, parse_config

_load_commands()
runner = CliRunner()
GUEK = "000102030405060708090A0B0C0D0E0F"


def test_a_push_meter_for_home_assistant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("E450_GUEK", raising=False)
    out = tmp_path / "meterbridge.yaml"
    result = runner.invoke(
        app,
        ["config", "new", "--push", "/dev/ttyUSB0", "--key-env", "E450_GUEK", "--mqtt", "mqtt://ha.local",
         "--timezone", "Europe/Zurich", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "set E450_GUEK" in result.stderr  # not set yet: the user is told
    assert "E450_GUEK" in out.read_text() and GUEK not in out.read_text()  # keys never in the file
    assert "E450_GUEK" not in os.environ  # the stand-in used for the check is gone
    monkeypatch.setenv("E450_GUEK", GUEK)
    config = load_config(out)
    [meter] = config.meters
    assert (meter.protocol, meter.transport, meter.timezone) == (
        "push",
        "serial:///dev/ttyUSB0",
        "Europe/Zurich",
    )
    assert meter.keys.encryption is not None and meter.keys.encryption.get_secret_value() == GUEK
    assert {k: (v.scaler, v.unit) for k, v in meter.registers.items()} == {
        f"1-0:{c}.7.0.255": (-2, "A") for c in (31, 51, 71)
    }  # the E450 push's currents in 1/100 A (tests/vectors/dlms/e450_cii_push_unencrypted.json)
    assert config.sinks.mqtt is not None and config.sinks.mqtt.url == "mqtt://ha.local"
    assert config.sinks.mqtt.discovery
    again = runner.invoke(app, ["config", "new", "--optical", "/dev/ttyUSB1", "-o", str(out)])
    assert again.exit_code == 1 and "not overwritten" in again.stderr


def test_optical_and_a_bus_to_stdout() -> None:
    result = runner.invoke(
        app, ["config", "new", "--optical", "/dev/ttyUSB1", "--mbus", "tcp://10.0.0.5:10001"]
    )
    assert result.exit_code == 0, result.output
    config = parse_config(result.stdout)
    assert [m.protocol for m in config.meters] == ["optical"]
    assert config.buses[0].transport == "tcp://10.0.0.5:10001" and config.buses[0].scan.mode == "secondary"
    assert config.sinks.mqtt is None  # no broker given: no MQTT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "at least one meter"),
        (["--push", "/dev/ttyUSB0"], "--key-env"),
        (["--push", "/dev/ttyUSB0", "--key-env", "K", "--timezone", "Mars/Olympus"], "timezone"),
        (["--optical", "/dev/ttyUSB0", "--name", "bad name!"], "name"),
    ],
)
def test_what_cannot_make_a_valid_file_is_refused(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["config", "new", *args])
    assert result.exit_code == 2
    assert message in result.stderr
