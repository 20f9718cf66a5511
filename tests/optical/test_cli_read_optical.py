"""``meterbridge read optical`` end to end: the simulated E450 (``meterbridge simulate e450 --pty``) read over a PTY."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import meterbridge.cli.read_optical  # noqa: F401  (registers the command)
from meterbridge.cli.app import app

runner = CliRunner()


@contextlib.contextmanager
def running_e450(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``meterbridge simulate e450 --pty`` in a subprocess: (link, process, stderr file)."""
    link = directory / "optical"
    errors = directory / "simulator.err"
    with errors.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meterbridge", "simulate", "e450", "--pty", str(link), "--seed", "3"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        for _ in range(300):
            if os.path.islink(link) or proc.poll() is not None:
                break
            time.sleep(0.05)
        if not os.path.islink(link):
            raise AssertionError(f"simulator did not start: {errors.read_text()}")
        yield str(link), proc, errors
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def e450(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_e450(tmp_path_factory.mktemp("e450")) as (link, _, _):
        yield link


def rows(output: str) -> list[dict[str, object]]:
    return [json.loads(line, parse_float=Decimal) for line in output.splitlines()]


def test_readout_json(e450: str) -> None:
    result = runner.invoke(app, ["read", "optical", e450, "--json"])
    assert result.exit_code == 0, result.output
    values = rows(result.stdout)
    by = {r["obis"]: r for r in values}
    energy = by["1-0:1.8.0.255"]
    assert energy["unit"] == "kWh" and isinstance(energy["value"], Decimal | int)
    assert by["1-0:32.7.0.255"]["unit"] == "V"
    assert len({r["meter"] for r in values}) == 1
    assert all(r["authenticated"] is None for r in values)


def test_readout_selected_codes_and_frame_log(e450: str, tmp_path: Path) -> None:
    log = tmp_path / "frames.log"
    result = runner.invoke(
        app,
        [
            "read",
            "optical",
            e450,
            "--json",
            "--obis",
            "1.8.0",
            "--obis",
            "1-0:99.99.9",
            "--log-frames",
            str(log),
        ],
    )
    assert result.exit_code == 1, (result.output, result.exception)  # one code is not in the readout
    values = rows(result.stdout)
    assert [r["obis"] for r in values] == ["1-0:1.8.0.255", "1-0:99.99.9.255"]
    assert values[1]["error"] == "not in the readout" and values[1]["value"] is None
    text = log.read_text()
    assert " tx " in text and "2f 3f 21 0d 0a" in text  # the sign-on, in hex
    assert " line " in text  # the baud switch
    kinds = [entry.split()[1] for entry in text.splitlines()]
    assert kinds.index("tx") < kinds.index("line")  # opened at 300 7E1: the sign-on is sent as opened


def test_readers_one_after_another(e450: str) -> None:
    """Each reader opens the PTY the previous one left at 300 baud (straight at 7E1)."""
    for _ in range(3):
        result = runner.invoke(app, ["read", "optical", e450, "--json", "--obis", "1.8.0"])
        assert result.exit_code == 0, (result.output, result.exception)
        assert [r["obis"] for r in rows(result.stdout)] == ["1-0:1.8.0.255"]


def test_programming_mode(e450: str) -> None:
    result = runner.invoke(
        app,
        ["read", "optical", e450, "--json", "--obis", "1.8.0", "--obis", "32.7.0", "--password", "00000000"],
    )
    assert result.exit_code == 0, result.output
    values = rows(result.stdout)
    assert [r["obis"] for r in values] == ["1-0:1.8.0.255", "1-0:32.7.0.255"]
    assert values[0]["unit"] == "kWh" and values[1]["unit"] == "V"
    assert "00000000" not in result.output


def test_wrong_password(e450: str) -> None:
    result = runner.invoke(app, ["read", "optical", e450, "--obis", "1.8.0", "--password", "bad-one"])
    assert result.exit_code == 2
    assert "refused the P1 password" in result.stderr and "bad-one" not in result.output


def test_bad_options() -> None:
    result = runner.invoke(app, ["read", "optical", "/dev/null", "--obis", "not-a-code"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["read", "optical", "/dev/null", "--password", "x"])
    assert result.exit_code == 2 and "--obis" in result.output


def test_mode_e_hands_over_to_dlms(tmp_path: Path) -> None:
    with running_e450(tmp_path) as (link, proc, errors):
        result = runner.invoke(
            app, ["read", "optical", link, "--mode", "e", "--json", "--obis", "1.8.0", "--obis", "32.7.0"]
        )
        assert result.exit_code == 0, (result.output, errors.read_text())
        values = rows(result.stdout)
        assert [r["obis"] for r in values] == ["1-0:1.8.0.255", "1-0:32.7.0.255"]
        assert values[0]["unit"] == "Wh" and values[1]["unit"] == "V"
        assert proc.poll() is None
    result = runner.invoke(app, ["read", "optical", "/dev/null", "--mode", "e"])
    assert result.exit_code == 2 and "--obis" in result.output


def snrm_sources(log: Path) -> list[str]:
    """HDLC client address bytes of the SNRMs sent: ``tx .. 7e a0 LEN 02 23 CLIENT 93``."""
    entries = [entry.split()[1:] for entry in log.read_text().splitlines()]
    return [
        e[7]
        for e in entries
        if e[0] == "tx" and e[2:4] == ["7e", "a0"] and e[5:7] == ["02", "23"] and e[8] == "93"
    ]


def test_mode_e_password_reads_as_the_reading_client(tmp_path: Path) -> None:
    """--password without --client: LLS as client 32 (HDLC address 0x41); a wrong one leaves the meter usable."""
    obis = ["--obis", "1.8.0", "--obis", "32.7.0"]
    with running_e450(tmp_path) as (link, proc, errors):
        wrong = runner.invoke(app, ["read", "optical", link, "--mode", "e", "--password", "bad-pass", *obis])
        assert wrong.exit_code == 2, (wrong.output, errors.read_text())
        assert "rejected the association" in wrong.stderr and "--password" in wrong.stderr
        assert "bad-pass" not in wrong.output

        def read(*extra: str) -> list[str]:
            log = tmp_path / f"frames-{len(extra)}-{'-'.join(extra)}.log"
            args = ["read", "optical", link, "--mode", "e", "--json", *obis, "--log-frames", str(log), *extra]
            result = runner.invoke(app, args)
            assert result.exit_code == 0, (result.output, errors.read_text())
            assert [r["obis"] for r in rows(result.stdout)] == ["1-0:1.8.0.255", "1-0:32.7.0.255"]
            assert "00000000" not in result.output
            return snrm_sources(log)

        assert read("--password", "00000000") == ["41"]  # client 32
        assert read() == ["21"]  # no password: the public client 16
        assert read("--password", "00000000", "--client", "1") == ["03"]  # client 1, as asked
        assert proc.poll() is None

    public = runner.invoke(
        app, ["read", "optical", "/dev/null", "--mode", "e", "--client", "16", "--password", "x", *obis]
    )
    assert public.exit_code == 2 and "public client" in public.output
    too_big = runner.invoke(app, ["read", "optical", "/dev/null", "--mode", "e", "--client", "200", *obis])
    assert too_big.exit_code == 2 and "--client" in too_big.output


def test_help_names_the_defaults() -> None:
    from meterbridge.drivers.dlms_client import DEFAULT_TIMEOUT
    from meterbridge.drivers.optical import PUBLIC_CLIENT, READING_CLIENT

    result = runner.invoke(app, ["read", "optical", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert (
        f"Default: {PUBLIC_CLIENT} (public client" in text and f"{READING_CLIENT} (Landis+Gyr reading" in text
    )
    assert f"DLMS in mode e waits {DEFAULT_TIMEOUT:g} s" in text
