"""Bad input to ``scan``, ``read mbus`` and ``simulate mbus``: one clear error line, exit 2, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

import meterbridge.cli.read
import meterbridge.cli.scan
import meterbridge.cli.simulate  # noqa: F401  (registers the commands on the app)
from meterbridge.cli.app import app

runner = CliRunner()


def _fails_cleanly(args: list[str], phrase: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert phrase in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "tcp://127.0.0.1:9", "--baud", "0"],
        ["read", "mbus", "tcp://127.0.0.1:9", "1", "--baud", "-5"],
        ["simulate", "mbus", "--pty", "/tmp/never-created", "--baud", "0"],
    ],
)
def test_a_bad_baud_rate_is_a_usage_error(args: list[str]) -> None:
    _fails_cleanly(args, "baud rate must be a positive integer")


def test_simulate_port_out_of_range() -> None:
    _fails_cleanly(["simulate", "mbus", "--tcp", "127.0.0.1:99999"], "PORT 0..65535")


def test_simulate_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        _fails_cleanly(["simulate", "mbus", "--tcp", f"127.0.0.1:{port}", "--meters", "1"], "cannot listen")


def test_simulate_pty_link_in_a_missing_directory(tmp_path: Path) -> None:
    link = tmp_path / "missing" / "ttyMBUS"
    _fails_cleanly(["simulate", "mbus", "--pty", str(link), "--meters", "1"], f"cannot create {link}")
