"""``decode`` and ``keytest`` read a ``--log-frames`` capture directly (its rx lines)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

import meterbridge.cli.decode
import meterbridge.cli.keytest  # noqa: F401  (registers the command)
from meterbridge.cli.app import app
from meterbridge.transports.frame_log import FrameRecord

VECTORS = Path(__file__).parent / "vectors"
MBUS = VECTORS / "mbus-libmbus" / "test-frames" / "ACW_Itron-BM-plus-m.hex"
PUSH = json.loads((VECTORS / "dlms" / "e450_cii_push_unencrypted.json").read_text())
runner = CliRunner()
START = datetime(2026, 1, 1, tzinfo=UTC)


def _capture(tmp_path: Path, received: list[bytes], piece: int = 7) -> Path:
    """A capture as ``listen``/``read`` write it: our requests (tx), the answers cut in pieces (rx), events."""
    records = [FrameRecord(START, "line", "/dev/ttyUSB0", note="2400 8E1")]
    for frame in received:
        records.append(FrameRecord(START, "tx", "/dev/ttyUSB0", bytes.fromhex("107b027d16")))
        records += [
            FrameRecord(START + timedelta(milliseconds=i), "rx", "/dev/ttyUSB0", frame[i : i + piece])
            for i in range(0, len(frame), piece)
        ]
    records.append(FrameRecord(START, "event", "/dev/ttyUSB0", note="close"))
    path = tmp_path / "capture.log"
    path.write_text("".join(r.format() + "\n" for r in records))
    return path


def test_decode_reads_the_rx_bytes_of_a_frame_log(tmp_path: Path) -> None:
    frame = bytes.fromhex("".join(MBUS.read_text().split()))
    plain = runner.invoke(app, ["decode", str(MBUS)])
    logged = runner.invoke(app, ["decode", str(_capture(tmp_path, [frame]))])
    assert plain.exit_code == 0 and logged.exit_code == 0, logged.output
    assert logged.stdout == plain.stdout
    assert json.loads(logged.stdout)["id"] == "11490378"


def test_decode_a_frame_log_of_hdlc_pushes(tmp_path: Path) -> None:
    frames = [bytes.fromhex(f) for f in PUSH["frames_hex"]]
    result = runner.invoke(app, ["decode", str(_capture(tmp_path, frames, piece=40))])
    assert result.exit_code == 0, result.output
    obis = [json.loads(line)["obis"] for line in result.stdout.splitlines()]
    assert "1-1:1.8.0.255" in obis


def test_keytest_reads_a_frame_log(tmp_path: Path) -> None:
    frames = [bytes.fromhex(f) for f in PUSH["frames_hex"]]
    result = runner.invoke(app, ["keytest", str(_capture(tmp_path, frames)), "--key", "00" * 16])
    # the vector is not ciphered: the framing is found, and keytest says the push needs no key
    assert "no push found" not in result.output, result.output
    assert result.output.startswith("Framing: HDLC frames")


def test_bad_frame_log_lines_name_the_line(tmp_path: Path) -> None:
    good = FrameRecord(START, "rx", "tcp://127.0.0.1:1", b"\xe5").format()
    for bad, message in [
        (good + " zz", "line 2: rx bytes are not pairs of hex digits"),
        (good + " 1", "line 2: rx bytes are not pairs of hex digits"),
        ("hello world", "line 2: not a --log-frames line"),
    ]:
        path = tmp_path / "bad.log"
        path.write_text(good + "\n" + bad + "\n")
        result = runner.invoke(app, ["decode", str(path), "--protocol", "mbus"])
        assert result.exit_code == 2
        assert message in result.output
        assert "Traceback" not in result.output
