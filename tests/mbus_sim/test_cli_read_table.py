"""``read mbus`` prints every record key whole on a narrow terminal (keys are copied into configurations)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

import meterbridge.cli.read  # noqa: F401  (registers the command on the app)
from meterbridge.cli.app import app
from meterbridge.simulator.mbus import MBusSimulator

runner = CliRunner()


def test_keys_are_folded_not_cut(bus: tuple[MBusSimulator, int]) -> None:
    _, port = bus
    json_out = runner.invoke(app, ["read", "mbus", f"tcp://127.0.0.1:{port}", "1", "--json"])
    assert json_out.exit_code == 0, json_out.output
    table = runner.invoke(app, ["read", "mbus", f"tcp://127.0.0.1:{port}", "1"], env={"COLUMNS": "60"})
    assert table.exit_code == 0, table.output
    assert "…" not in table.stdout
    # the key column's pieces, joined again row by row, hold every key in full
    first_cells = [m.group(1).strip() for m in re.finditer(r"^│ ([^│]*)│", table.stdout, re.MULTILINE)]
    joined = "".join(first_cells)
    assert "mbus/0/" in joined
    for key in re.findall(r"mbus/\d+/[a-z_]+/[a-z_]+/s\d+/t\d+/u\d+", joined):
        assert key.startswith("mbus/")
    assert len(re.findall(r"/s\d+/t\d+/u\d+", joined)) == len(re.findall(r"mbus/\d+/", joined))
