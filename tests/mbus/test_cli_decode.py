"""``meterbridge decode`` with the M-Bus decoder: JSON lines, exact numbers, errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from meterbridge.cli.app import app
from meterbridge.cli.decode import DecodeOptions, decoders, to_json

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "mbus-libmbus" / "test-frames"
runner = CliRunner()


def test_registry_has_mbus_and_detects() -> None:
    registry = decoders()
    assert "mbus" in registry
    mbus = registry["mbus"]
    assert mbus.detect(b"\x68\x03") and mbus.detect(b"\xe5") and mbus.detect(b"\x10\x40")
    assert not mbus.detect(b"/LGZ") and not mbus.detect(b"\x7e\xa0")


def test_corpus_as_one_hex_file_decodes_every_frame(tmp_path: Path) -> None:
    names = sorted(VECTORS.glob("*.hex"))
    path = tmp_path / "all.hex"
    path.write_text("\n".join(p.read_text().strip() for p in names) + "\n")
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(names) == 76
    first = json.loads(lines[0], parse_float=Decimal)
    assert first["manufacturer"] == "ACW" and first["records"][1]["value"] == Decimal("54.321")


def test_raw_binary_input_and_exact_values(tmp_path: Path) -> None:
    data = bytes.fromhex((VECTORS / "kamstrup_multical_601.hex").read_text())
    path = tmp_path / "frame.bin"
    path.write_bytes(data * 3)
    result = runner.invoke(app, ["decode", "--protocol", "mbus", str(path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    obj = json.loads(lines[0], parse_float=Decimal)
    assert obj["id"] == "06855817" and obj["medium"] == "heat_outlet"
    volume = obj["records"][2]
    assert (volume["quantity"], volume["unit"], volume["value"]) == ("volume", "m³", Decimal("561.08"))
    assert '"value": 561.08}' in lines[0]  # printed exactly, not 561.0800000000001


def test_error_names_offset_and_exits_2(tmp_path: Path) -> None:
    data = bytes.fromhex((VECTORS / "kamstrup_multical_601.hex").read_text())
    bad = bytearray(data)
    bad[-2] ^= 1
    path = tmp_path / "bad.hex"
    path.write_text(data.hex(" ") + "\n" + bytes(bad).hex(" ") + "\n")
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 2
    assert len(result.stdout.splitlines()) == 1  # the good frame is printed first
    assert f"(at byte {2 * len(data) - 2})" in result.stderr
    assert "checksum" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_slave_error_frame_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "busy.hex"
    path.write_text("68 04 04 68 08 01 70 08 81 16\n")
    result = runner.invoke(app, ["decode", str(path)])
    assert result.exit_code == 2
    assert "Application busy (at byte 7)" in result.stderr


def test_requests_are_shown(tmp_path: Path) -> None:
    path = tmp_path / "req.hex"
    path.write_text("10 7B 05 80 16\n68 0B 0B 68 73 FD 52 78 56 34 12 FF FF FF FF D2 16\nE5\n")
    result = runner.invoke(app, ["decode", "--pretty", str(path)])
    assert result.exit_code == 0, result.output
    assert '"request": "REQ_UD2"' in result.stdout
    assert '"pattern": "12345678FFFFFFFF"' in result.stdout
    assert '"frame": "ack"' in result.stdout


def test_unknown_protocol_and_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "x.hex"
    path.write_text("E5\n")
    assert runner.invoke(app, ["decode", "--protocol", "nope", str(path)]).exit_code != 0
    assert runner.invoke(app, ["decode", "--key", "00", str(path)]).exit_code != 0


def test_to_json_exact_decimals_and_options_hide_keys() -> None:
    assert to_json({"v": Decimal("3.7351E+7"), "w": Decimal("0.000001"), "b": b"\x01\xab"}) == (
        '{"v": 37351000, "w": 0.000001, "b": "01AB"}'
    )
    assert "00112233" not in repr(DecodeOptions(key=bytes.fromhex("00112233445566778899aabbccddeeff")))
