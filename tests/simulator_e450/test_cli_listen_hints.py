"""``listen``: one-time hints on stderr for pushed times without UTC offset (no --timezone) and for current
registers without scaler (no --scaler), on the real E450 CII push vector."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterbridge.cli import _load_commands, app
from meterbridge.cli.listen import ASSUMED_UTC, SCALER_HINT, TIMEZONE_HINT, PushHints
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.push import PushDecoder, PushReadings, RegisterFormat

_load_commands()
PUSH = json.loads(
    (Path(__file__).parents[1] / "vectors" / "dlms" / "e450_cii_push_unencrypted.json").read_text()
)
WIRE = b"".join(bytes.fromhex(f) for f in PUSH["frames_hex"])
CURRENTS = {(c, 7, 0) for c in (31, 51, 71)}


def _push(**kw: object) -> PushReadings:
    decoder = PushDecoder(**kw)  # type: ignore[arg-type]
    decoder.receive_data(WIRE)
    (event,) = decoder.events()
    assert isinstance(event, PushReadings)
    return event


def test_both_hints_once() -> None:
    hints = PushHints(timezone_given=False, scaled=set())
    push = _push(default_tz=ASSUMED_UTC)
    assert push.timestamp.utcoffset() is not None and push.timestamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert hints.check(push) == [TIMEZONE_HINT, SCALER_HINT]
    assert hints.check(push) == []
    assert "--timezone Europe/Zurich" in TIMEZONE_HINT and "--scaler 1-0:31.7.0=-2" in SCALER_HINT


def test_no_hint_when_the_options_are_given() -> None:
    assert PushHints(timezone_given=True, scaled=CURRENTS).check(_push(default_tz=UTC)) == []
    # a scaler decoded into the value (Decimal) also needs no hint, nor a real UTC zone given explicitly
    scaled = _push(
        default_tz=UTC, formats={ObisCode(1, 0, c, 7, 0): RegisterFormat(-2) for c in (31, 51, 71)}
    )
    assert PushHints(timezone_given=False, scaled=set()).check(scaled) == []


@pytest.fixture
def pusher() -> Iterator[int]:
    """A TCP server that sends the push to whoever connects."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(20)

    def serve() -> None:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.sendall(WIRE)
            conn.recv(1)  # until the listener closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    thread.join(5)


def test_listen_prints_the_hints_on_stderr(pusher: int) -> None:
    result = CliRunner().invoke(app, ["listen", f"tcp://127.0.0.1:{pusher}", "--count", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count(TIMEZONE_HINT) == 1
    assert result.stderr.count(SCALER_HINT) == 1
    assert "hint" not in result.stdout


def test_listen_without_hints_when_given_the_options(pusher: int) -> None:
    args = ["listen", f"tcp://127.0.0.1:{pusher}", "--count", "1", "--json", "--timezone", "Europe/Zurich"]
    for c in (31, 51, 71):
        args += ["--scaler", f"1-0:{c}.7.0=-2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "hint" not in result.stderr
