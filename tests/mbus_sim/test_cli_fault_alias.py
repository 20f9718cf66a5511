"""``--fault`` and ``--faults`` are one repeatable option of check, simulate e450 and simulate mbus."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from meterbridge.cli import _load_commands, app

_load_commands()
runner = CliRunner()


def _flat(output: str) -> str:
    return re.sub(r"[│\s]+", " ", output)


SIMULATORS = [
    ["simulate", "mbus", "--tcp", "127.0.0.1:0"],
    ["simulate", "e450", "--wrapper-tcp", "127.0.0.1:0"],
]


@pytest.mark.parametrize("command", SIMULATORS)
@pytest.mark.parametrize(
    ("first", "second"), [("--fault", "--faults"), ("--faults", "--fault"), ("--fault", "--fault")]
)
def test_simulators_take_both_spellings_repeated(command: list[str], first: str, second: str) -> None:
    # the second item is invalid: the error proves both were read and joined (a valid run would serve forever)
    result = runner.invoke(app, [*command, first, "drop=0.1", second, "flip=5"])
    assert result.exit_code == 2
    assert "fault flip_rate must be within 0..1, got 5.0" in _flat(result.output)
    first_only = runner.invoke(app, [*command, first, "drop=7", second, "flip=0.1"])
    assert "fault drop_rate must be within 0..1, got 7.0" in _flat(first_only.output)


@pytest.mark.parametrize("spelling", ["--fault", "--faults"])
def test_check_takes_both_spellings(spelling: str) -> None:
    result = runner.invoke(
        app, ["check", "--simulate", "1", spelling, "sim-e450-1:drift", spelling, "nocolon"]
    )
    assert result.exit_code == 2
    assert "--fault 'nocolon': expected METER:FAULT" in _flat(result.output)


@pytest.mark.parametrize("command", [["check"], ["simulate", "mbus"], ["simulate", "e450"]])
def test_help_names_both_spellings(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = _flat(result.output)
    assert "--fault" in text and "--faults" in text
    assert "Also spelled --fault" in text
