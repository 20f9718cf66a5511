"""``meterbridge decode`` (hdlc / DLMS-in-M-Bus decoder) and ``meterbridge keytest`` end to end."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

import meterbridge.cli.keytest  # noqa: F401  (registers the command)
from meterbridge.cli.app import app
from meterbridge.cli.decode import decoders, detect_protocol
from meterbridge.protocols.dlms.apdu import GeneralGloCiphering, decode_apdu
from meterbridge.protocols.dlms.security import SecurityKeys, encrypt
from meterbridge.protocols.dlms.transfer import split_general_block_transfer
from meterbridge.protocols.hdlc import HdlcFrame

VECTORS = Path(__file__).parents[1] / "vectors" / "dlms"
PUSH = json.loads((VECTORS / "e450_cii_push_unencrypted.json").read_text())
GCM = json.loads((VECTORS / "green_book_gcm.json").read_text())
FRAMES = [bytes.fromhex(f) for f in PUSH["frames_hex"]]
EK, AK = GCM["encryption_key"], GCM["authentication_key"]
WRONG = "00" * 16
TITLE = b"LGZ" + bytes.fromhex("6700BC614E")
runner = CliRunner()


def _plain_apdu() -> bytes:
    return b"".join(HdlcFrame.decode(f).payload[7:] for f in FRAMES)


def _ciphered(sc: int = 0x30, counter: int = 5) -> bytes:
    keys = SecurityKeys(bytes.fromhex(EK), bytes.fromhex(AK))
    protected = encrypt(
        _plain_apdu(), system_title=TITLE, invocation_counter=counter, keys=keys, security_control=sc
    )
    return GeneralGloCiphering(TITLE, protected).encode()


def _hdlc(apdu: bytes) -> list[bytes]:
    template = HdlcFrame.decode(FRAMES[0])
    return [
        dataclasses.replace(template, information=(b"\xe6\xe7\x00" if i == 0 else b"") + b.encode()).encode()
        for i, b in enumerate(split_general_block_transfer(apdu, 112))
    ]


def _mbus(apdu: bytes) -> bytes:
    def frame(ci: int, chunk: bytes) -> bytes:
        body = bytes((0x53, 0xFF, ci, 0x01, 0x67)) + chunk
        return bytes((0x68, len(body), len(body), 0x68)) + body + bytes((sum(body) & 0xFF, 0x16))

    return frame(0x00, apdu[:245]) + frame(0x11, apdu[245:])


def _write(tmp_path: Path, frames: list[bytes], name: str = "push.hex") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(f.hex().upper() for f in frames) + "\n")
    return path


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line, parse_float=Decimal) for line in output.splitlines()]


def test_registry_detection_order() -> None:
    registry = decoders()
    assert "hdlc" in registry
    hdlc = registry["hdlc"]
    assert hdlc.detect(FRAMES[0][:64]) and hdlc.detect(_mbus(_ciphered(0x20))[:64])
    plain_mbus = bytes.fromhex(
        "681F1F680808727856341224400107550000000003740300000000000000000000000000000016"
    )
    assert not hdlc.detect(plain_mbus[:64]) and not hdlc.detect(b"\xe5") and not hdlc.detect(b"/LGZ")
    assert detect_protocol(_mbus(_ciphered(0x20))[:64], registry) is hdlc
    assert detect_protocol(FRAMES[0][:64], registry) is hdlc
    if "mbus" in registry:
        assert detect_protocol(plain_mbus[:64], registry) is registry["mbus"]


def test_decode_the_vector_to_json_lines(tmp_path: Path) -> None:
    result = runner.invoke(app, ["decode", str(_write(tmp_path, FRAMES)), "--scaler", "1-0:31.7.0.255=-2"])
    assert result.exit_code == 0, result.output
    rows = {r["obis"]: r for r in _lines(result.stdout)}
    assert rows["1-0:32.7.0.255"] == {
        "meter": "LGZ1030653520967",
        "obis": "1-0:32.7.0.255",
        "value": 236,
        "unit": "V",
        "timestamp": "2026-05-04T11:39:21",
        "authenticated": None,
    }
    assert rows["1-0:31.7.0.255"]["value"] == Decimal("0.09")
    assert rows["1-1:1.8.0.255"]["value"] == 482939 and rows["1-1:1.8.0.255"]["unit"] == "Wh"


def test_decode_raw_binary_input(tmp_path: Path) -> None:
    path = tmp_path / "push.bin"
    path.write_bytes(b"".join(FRAMES))
    result = runner.invoke(app, ["decode", str(path), "--protocol", "hdlc"])
    assert result.exit_code == 0, result.output
    assert len(_lines(result.stdout)) == 13


@pytest.mark.parametrize(("auth", "expected"), [(AK, True), (None, False)])
def test_decode_ciphered(tmp_path: Path, auth: str | None, expected: bool) -> None:
    args = ["decode", str(_write(tmp_path, _hdlc(_ciphered()))), "--key", EK]
    if auth:
        args += ["--auth-key", auth]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert {r["authenticated"] for r in _lines(result.stdout)} == {expected}


def test_decode_mbus_framed(tmp_path: Path) -> None:
    result = runner.invoke(app, ["decode", str(_write(tmp_path, [_mbus(_ciphered(0x20))])), "--key", EK])
    assert result.exit_code == 0, result.output
    rows = _lines(result.stdout)
    assert len(rows) == 13 and {r["authenticated"] for r in rows} == {False}


@pytest.mark.parametrize(
    ("frames", "args", "message"),
    [
        ("bad_fcs", [], "hdlc: FCS mismatch"),
        ("ciphered", ["--key", EK, "--auth-key", WRONG], "dlms-security: GCM tag does not verify"),
        ("ciphered", [], "no encryption key"),
        ("ciphered", ["--key", "0011"], "16 bytes"),
    ],
)
def test_decode_failures_name_the_layer(tmp_path: Path, frames: str, args: list[str], message: str) -> None:
    data = _hdlc(_ciphered()) if frames == "ciphered" else [*FRAMES[:-1], FRAMES[-1][:-3] + b"\x00\x00\x7e"]
    result = runner.invoke(app, ["decode", str(_write(tmp_path, data)), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert WRONG not in result.output and EK not in result.output


def test_decode_describes_other_apdus(tmp_path: Path) -> None:
    aare = (
        json.loads((VECTORS / "hdlc_aare.json").read_text())["frame_hex"]
        if (VECTORS / "hdlc_aare.json").exists()
        else (
            "7ea0382102233034e7e6e7006129a109060760857405080101a203020100a305a103020100be10040e0800065f1f0400001e1d04c80007b86a7e"
        )
    )
    result = runner.invoke(app, ["decode", str(_write(tmp_path, [bytes.fromhex(aare)]))])
    assert result.exit_code == 0, result.output
    (row,) = _lines(result.stdout)
    assert row["apdu"] == "AARE" and row["result"] == "accepted"
    assert row["user_information"]["server_max_receive_pdu_size"] == 1224


@pytest.mark.parametrize(
    ("args", "code", "phrase"),
    [
        (["--key", EK, "--auth-key", AK], 0, "both keys are right"),
        (["--key", EK], 0, "encryption key opens the frame"),
        (["--key", EK, "--auth-key", WRONG], 1, "authentication key (--auth-key) is wrong"),
        (["--key", WRONG, "--auth-key", AK], 1, "the encryption key (--key) is wrong"),
        (["--key", WRONG], 1, "gives no valid APDU"),
        (["--key", "0011"], 1, "Key length"),
    ],
)
def test_keytest_says_which_part_is_wrong(tmp_path: Path, args: list[str], code: int, phrase: str) -> None:
    result = runner.invoke(app, ["keytest", str(_write(tmp_path, _hdlc(_ciphered()))), *args])
    assert result.exit_code == code, result.output
    assert phrase in result.output
    assert "System title: LGZ 6700BC614E" in result.output or "Key length" in phrase
    assert AK not in result.output and WRONG not in result.output


def test_keytest_framing_and_security_control(tmp_path: Path) -> None:
    broken = _hdlc(_ciphered())
    broken[1] = broken[1][:20] + b"\x00" + broken[1][21:]
    result = runner.invoke(app, ["keytest", str(_write(tmp_path, broken)), "--key", EK])
    assert result.exit_code == 1 and "Framing:" in result.output and "FCS" in result.output
    suite1 = bytearray(_ciphered())
    assert suite1[13] == 0x30
    suite1[13] = 0x31
    result = runner.invoke(app, ["keytest", str(_write(tmp_path, _hdlc(bytes(suite1)))), "--key", EK])
    assert result.exit_code == 1 and "Security control: 0x31 asks for security suite 1" in result.output
    mbus = runner.invoke(app, ["keytest", str(_write(tmp_path, [_mbus(_ciphered(0x20))])), "--key", EK])
    assert mbus.exit_code == 0 and "M-Bus long frames" in mbus.output and "encrypted, no tag" in mbus.output


def test_decode_replay_and_system_title_failures(tmp_path: Path) -> None:
    twice = _hdlc(_ciphered(counter=5)) + _hdlc(_ciphered(counter=5))
    result = runner.invoke(app, ["decode", str(_write(tmp_path, twice)), "--key", EK, "--auth-key", AK])
    assert result.exit_code == 2
    assert len(_lines(result.stdout)) == 13  # the first push came out before the replay was refused
    assert "dlms-security: invocation counter 5 of system title LGZ6700BC614E does not rise" in result.output
    envelope = decode_apdu(_ciphered())
    assert isinstance(envelope, GeneralGloCiphering)
    short_title = GeneralGloCiphering(TITLE[:7], envelope.ciphered).encode()
    result = runner.invoke(app, ["decode", str(_write(tmp_path, _hdlc(short_title))), "--key", EK])
    assert result.exit_code == 2 and "system title is 7 bytes, expected 8" in result.output
