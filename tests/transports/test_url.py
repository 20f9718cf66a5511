"""Transport URLs: what is accepted, and errors that name what was wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from meterbridge.errors import ConfigError
from meterbridge.transports import (
    MBUS_2400,
    EchoCanceller,
    LineSettings,
    PtyTransport,
    ReopeningTransport,
    open_transport,
    parse_transport_url,
)


@pytest.mark.parametrize(
    ("url", "kind", "host", "port", "path"),
    [
        ("tcp://192.168.1.20:4059", "tcp", "192.168.1.20", 4059, ""),
        ("udp://meter.local:4059", "udp", "meter.local", 4059, ""),
        ("tcp://[::1]:10001", "tcp", "::1", 10001, ""),
        ("/dev/ttyUSB0", "serial", "", 0, "/dev/ttyUSB0"),
        (
            "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K5ZQ2-if00-port0",
            "serial",
            "",
            0,
            "/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K5ZQ2-if00-port0",
        ),
        ("serial:///dev/ttyAMA0", "serial", "", 0, "/dev/ttyAMA0"),
        ("rfc2217://10.0.0.7:2217", "serial-url", "10.0.0.7", 2217, "rfc2217://10.0.0.7:2217"),
        ("loop://", "serial-url", "", 0, "loop://"),
        ("pty:///tmp/e450", "pty", "", 0, "/tmp/e450"),
        ("pty://", "pty", "", 0, ""),
    ],
)
def test_accepted(url: str, kind: str, host: str, port: int, path: str) -> None:
    spec = parse_transport_url(url)
    assert (spec.kind, spec.host, spec.port, spec.path) == (kind, host, port, path)


def test_line_from_query_or_default() -> None:
    assert parse_transport_url("/dev/ttyUSB0?line=2400/8E1").line == MBUS_2400
    assert parse_transport_url("/dev/ttyUSB0?baud=2400&format=8E1").line == MBUS_2400
    assert parse_transport_url("/dev/ttyUSB0?baud=300", line=LineSettings(9600, 7, "E")).line == LineSettings(  # type: ignore[arg-type]
        300,
        7,
        "E",  # type: ignore[arg-type]
    )
    assert parse_transport_url("/dev/ttyUSB0", line=MBUS_2400).line == MBUS_2400
    assert parse_transport_url("/dev/ttyUSB0").line == LineSettings(9600)
    spec = parse_transport_url("tcp://gw:10001?reopen=1&echo=yes")
    assert spec.reopen and spec.echo


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("", "empty"),
        ("tcp://", "missing host and port"),
        ("tcp://192.168.1.20", "missing port"),
        ("tcp://:4059", "missing host"),
        ("tcp://host:http", "'http' is not a number"),
        ("tcp://host:70000", "out of range"),
        ("tcp://host:4059/x", "unexpected path"),
        ("tcp://bad_host!:4059", "not a valid host"),
        ("tcp://[::1:4059", "not closed"),
        ("tcp://[zz]:4059", "not an IPv6 address"),
        ("ftp://host:21", "unknown scheme 'ftp'"),
        ("tcp:host:4059", "must be followed by '://'"),
        ("ttyUSB0", "must be absolute"),
        ("serial://ttyUSB0", "absolute device path"),
        ("/dev/ttyUSB0?speed=2400", "unknown option 'speed'"),
        ("/dev/ttyUSB0?line=fast", "option line"),
        ("/dev/ttyUSB0?baud=fast", "baud='fast' is not a number"),
        ("/dev/ttyUSB0?baud=2400&format=9Q1", "option format"),
        ("/dev/ttyUSB0?line=2400/8E1&baud=300", "either line"),
        ("/dev/ttyUSB0?reopen=maybe", "reopen='maybe'"),
        ("/dev/ttyUSB0?reopen", "not NAME=VALUE"),
        ("pty://relative", "absolute link path"),
    ],
)
def test_errors_name_the_problem(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_transport_url(url)
    assert says in str(err.value)
    assert "transport URL" in str(err.value)


async def test_open_pty_url_and_wrappers(tmp_path: Path) -> None:
    link = tmp_path / "e450"
    t = await open_transport(f"pty://{link}?line=300/7E1&echo=1")
    assert isinstance(t, EchoCanceller)
    assert isinstance(t.inner, PtyTransport)
    assert t.line == LineSettings(300, 7, "E", 1)  # type: ignore[arg-type]
    assert link.is_symlink()
    await t.close()
    assert not link.exists()


async def test_open_with_reopen_keeps_trying_a_missing_device(tmp_path: Path) -> None:
    t = await open_transport(f"{tmp_path / 'absent'}?reopen=1")
    assert isinstance(t, ReopeningTransport)
    assert not t.is_open
    await t.close()
