"""``meterbridge decode`` with the iec62056-21 and p1 decoders: detection, JSON lines, exact values, errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

import meterbridge.cli.decode  # noqa: F401  (registers the command on app)
from meterbridge.cli.app import app
from meterbridge.cli.decode import decoders, detect_protocol
from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    DataValue,
    OptionSelect,
    Password,
    ReadRequest,
    SignOn,
)

from .test_p1 import TELEGRAM
from .test_vector import RAW

runner = CliRunner()


def lines_of(output: str) -> list[dict[str, object]]:
    return [json.loads(line, parse_float=Decimal) for line in output.splitlines()]


def test_detection() -> None:
    registry = decoders()
    assert detect_protocol(RAW[:64], registry).name == "iec62056-21"  # type: ignore[union-attr]
    assert detect_protocol(RAW[RAW.index(b"\x02") :][:64], registry).name == "iec62056-21"  # type: ignore[union-attr]
    assert detect_protocol(TELEGRAM[:64], registry).name == "p1"  # type: ignore[union-attr]


def test_readout_hex_file(tmp_path: Path) -> None:
    path = tmp_path / "readout.hex"
    path.write_text(RAW.hex(" ") + "\n")
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 0, result.output
    rows = lines_of(result.stdout)
    assert len(rows) == 22
    voltage = next(r for r in rows if r["obis"] == "1-0:32.7.0.255")
    assert voltage == {
        "meter": "13647123",
        "obis": "1-0:32.7.0.255",
        "value": 241,
        "unit": "V",
        "timestamp": None,
        "authenticated": None,
    }
    energy = next(r for r in rows if r["obis"] == "1-0:1.8.0.255")
    assert energy["value"] == Decimal("61561.289") and energy["unit"] == "kWh"


def test_programming_capture_never_prints_the_password(tmp_path: Path) -> None:
    answer = DataMessage.answer("1.8.0", DataValue("001234.567", "kWh")).encode()
    capture = (
        SignOn().encode()
        + b"/LGZ5ZMF100AC.M26\r\n"
        + OptionSelect("5", mode="1").encode()
        + Password("s3cret").encode()
        + b"\x06"
        + ReadRequest("1.8.0").encode()
        + answer
    )
    path = tmp_path / "prog.bin"
    path.write_bytes(capture)
    result = runner.invoke(app, ["decode", "--protocol", "iec62056-21", str(path)])
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    rows = lines_of(result.stdout)
    assert rows[0] == {"request": "sign-on", "address": ""}
    assert {"request": "P1"} in rows and {"request": "R1", "address": "1.8.0"} in rows
    assert rows[-1]["value"] == Decimal("1234.567") and rows[-1]["meter"] == "LGZ5ZMF100AC.M26"


def test_bad_bcc_exits_2_with_the_offset(tmp_path: Path) -> None:
    broken = bytearray(RAW)
    broken[-1] ^= 0x10
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(broken))
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 2
    assert f"at byte {len(RAW) - 1}" in result.stderr and "BCC mismatch" in result.stderr


def test_p1_telegrams(tmp_path: Path) -> None:
    path = tmp_path / "p1.bin"
    path.write_bytes(TELEGRAM + b"\x00noise" + TELEGRAM)
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 0, result.output
    rows = lines_of(result.stdout)
    assert len(rows) == 46
    gas = next(r for r in rows if r["obis"] == "0-1:24.2.1.255")
    assert gas["meter"] == "G0039001700490317" and gas["value"] == Decimal("4321.987")
    assert gas["timestamp"] == "2023-11-28T10:40:05+01:00"


def test_p1_crc_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "p1.bin"
    path.write_bytes(TELEGRAM + TELEGRAM.replace(b"236.1", b"236.2"))
    result = runner.invoke(app, ["decode", "-p", "p1", str(path)])
    assert result.exit_code == 2
    assert len(result.stdout.splitlines()) == 23
    assert (
        "CRC-16 mismatch" in result.stderr
        and f"at byte {len(TELEGRAM) + TELEGRAM.index(b'!') + 1}" in result.stderr
    )
