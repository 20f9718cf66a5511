"""``open_transport(url)``: one string names any port meterbridge can use.

=================================  ==================================================
``/dev/ttyUSB0``                   local serial device (also ``/dev/serial/by-id/...``,
``serial:///dev/ttyUSB0``          ``/dev/pts/N``, a symlink made by the simulator)
``tcp://HOST:PORT``                TCP (M-Bus gateway, DLMS wrapper port 4059)
``udp://HOST:PORT``                UDP (DLMS wrapper over UDP)
``rfc2217://HOST:PORT``            pyserial's RFC 2217 client (also ``socket://``,
                                   ``loop://``, ``spy://``)
``pty://`` or ``pty:///tmp/link``  create a PTY pair; the transport is the master side,
                                   ``transport.path`` the device a reader opens
=================================  ==================================================

Line settings come from the URL query (``?line=2400/8E1`` or ``?baud=2400&format=8E1``),
else from the ``line`` argument (a driver passes its protocol's default), else 9600 8N1.
Query options ``reopen=1`` (wrap in a
:class:`~meterbridge.transports.reopen.ReopeningTransport`) and ``echo=1`` (wrap in an
:class:`~meterbridge.transports.echo.EchoCanceller`) are accepted for every scheme.

:func:`parse_transport_url` checks a URL without opening anything; both raise
:class:`~meterbridge.errors.ConfigError` naming the URL and what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from meterbridge.errors import ConfigError
from meterbridge.transports.clock import Clock
from meterbridge.transports.echo import EchoCanceller
from meterbridge.transports.line import LineSettings
from meterbridge.transports.pty import open_pty_pair
from meterbridge.transports.reopen import ReopeningTransport
from meterbridge.transports.serial_port import open_serial, open_serial_url
from meterbridge.transports.sockets import open_tcp, open_udp
from meterbridge.transports.transport import Transport

__all__ = ["SCHEMES", "TransportUrl", "open_transport", "parse_transport_url"]

SCHEMES: Final = ("serial", "tcp", "udp", "rfc2217", "socket", "loop", "spy", "pty")
_DEFAULT_LINE: Final = LineSettings(9600)
_OPTIONS: Final = {"line", "baud", "format", "reopen", "echo"}
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


@dataclass(frozen=True, slots=True)
class TransportUrl:
    """A checked transport URL. ``kind``: serial, tcp, udp, serial-url or pty."""

    url: str
    kind: str
    path: str = ""
    host: str = ""
    port: int = 0
    line: LineSettings | None = None
    reopen: bool = False
    echo: bool = False


def _fail(url: str, what: str) -> ConfigError:
    return ConfigError(what, where=f"transport URL {url!r}")


def _flag(url: str, name: str, value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise _fail(url, f"option {name}={value!r} must be 1/0, true/false, yes/no or on/off")


def _host_port(url: str, rest: str, scheme: str) -> tuple[str, int]:
    example = f"{scheme}://HOST:PORT, e.g. {scheme}://192.168.1.20:4059"
    if not rest:
        raise _fail(url, f"missing host and port (expected {example})")
    if "/" in rest:
        raise _fail(
            url, f"unexpected path {rest[rest.index('/') :]!r} after the address (expected {example})"
        )
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep:
            raise _fail(url, "IPv6 address opened with '[' is not closed with ']'")
        if not tail.startswith(":"):
            raise _fail(url, f"missing port after [{host}] (expected {example})")
        port_text = tail[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _fail(url, f"{host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            raise _fail(url, f"missing port (expected {example})")
        if not host:
            raise _fail(url, f"missing host before ':{port_text}' (expected {example})")
        if not _HOSTNAME.match(host):
            raise _fail(url, f"host {host!r} is not a valid host name or IPv4 address")
    if not port_text.isdigit():
        raise _fail(url, f"port {port_text!r} is not a number (expected {example})")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise _fail(url, f"port {port} is out of range 1-65535")
    return host, port


def parse_transport_url(url: str, *, line: LineSettings | None = None) -> TransportUrl:
    """Check ``url`` and split it into its parts (see the module docstring)."""
    if not isinstance(url, str) or not url.strip():
        raise _fail(
            str(url), "empty; expected a device path or SCHEME://... with scheme one of " + ", ".join(SCHEMES)
        )
    text = url.strip()
    body, _, query = text.partition("?")
    options: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise _fail(url, f"query {query!r} is not NAME=VALUE pairs joined by '&'") from None
        for key, value in pairs:
            if key not in _OPTIONS:
                raise _fail(url, f"unknown option {key!r}; known: {', '.join(sorted(_OPTIONS))}")
            options[key] = value
    chosen = line or _DEFAULT_LINE
    if "line" in options:
        if "baud" in options or "format" in options:
            raise _fail(url, "give either line=... or baud=/format=, not both")
        try:
            chosen = LineSettings.parse(options["line"])
        except ValueError as exc:
            raise _fail(url, f"option line: {exc}") from None
    elif "baud" in options or "format" in options:
        baud_text = options.get("baud", str(chosen.baud))
        fmt = options.get("format", f"{chosen.bytesize}{chosen.parity.value}{int(chosen.stopbits)}")
        if not baud_text.isdigit():
            raise _fail(url, f"option baud={baud_text!r} is not a number")
        try:
            chosen = LineSettings.parse(f"{baud_text} {fmt}")
        except ValueError as exc:
            raise _fail(url, f"option format: {exc}") from None
    reopen = _flag(url, "reopen", options["reopen"]) if "reopen" in options else False
    echo = _flag(url, "echo", options["echo"]) if "echo" in options else False

    scheme, sep, rest = body.partition("://")
    if not sep:
        if body.startswith("/"):
            return TransportUrl(url, "serial", path=body, line=chosen, reopen=reopen, echo=echo)
        if ":" in body.split("/")[0]:
            raise _fail(url, f"scheme must be followed by '://' (known schemes: {', '.join(SCHEMES)})")
        raise _fail(url, "a device path must be absolute (e.g. /dev/ttyUSB0) or use SCHEME://")
    scheme = scheme.lower()
    if scheme == "serial":
        if not rest.startswith("/"):
            raise _fail(url, "serial:// needs an absolute device path, e.g. serial:///dev/ttyUSB0")
        return TransportUrl(url, "serial", path=rest, line=chosen, reopen=reopen, echo=echo)
    if scheme in ("tcp", "udp"):
        host, port = _host_port(url, rest, scheme)
        return TransportUrl(url, scheme, host=host, port=port, line=line, reopen=reopen, echo=echo)
    if scheme in ("rfc2217", "socket"):
        host, port = _host_port(url, rest, scheme)
        return TransportUrl(
            url, "serial-url", path=body, host=host, port=port, line=chosen, reopen=reopen, echo=echo
        )
    if scheme in ("loop", "spy"):
        return TransportUrl(url, "serial-url", path=body, line=chosen, reopen=reopen, echo=echo)
    if scheme == "pty":
        if rest and not rest.startswith("/"):
            raise _fail(url, "pty:// takes nothing or an absolute link path, e.g. pty:///tmp/e450")
        return TransportUrl(url, "pty", path=rest, line=chosen, reopen=False, echo=echo)
    raise _fail(url, f"unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}")


async def open_transport(
    url: str,
    *,
    line: LineSettings | None = None,
    clock: Clock | None = None,
    connect_timeout: float = 10.0,
) -> Transport:
    """Open the port ``url`` names (see the module docstring) and return a Transport.

    With ``reopen=1`` a port that cannot be opened yet is not an error: the returned
    transport raises ``TransportClosed`` until the background retry succeeds
    (``await transport.wait_open()``).
    """
    spec = parse_transport_url(url, line=line)
    settings = spec.line or _DEFAULT_LINE

    async def opener() -> Transport:
        if spec.kind == "serial":
            return await open_serial(spec.path, settings, clock=clock)
        if spec.kind == "tcp":
            return await open_tcp(
                spec.host, spec.port, clock=clock, connect_timeout=connect_timeout, line=spec.line
            )
        if spec.kind == "udp":
            return await open_udp(spec.host, spec.port, clock=clock)
        if spec.kind == "serial-url":
            return await open_serial_url(spec.path, settings, clock=clock)
        master, _ = await open_pty_pair(spec.path or None, line=settings, clock=clock)
        return master

    transport: Transport
    if spec.reopen:
        transport = await ReopeningTransport(opener, name=url, clock=clock).start(wait=False)
    else:
        transport = await opener()
    if spec.echo:
        transport = EchoCanceller(transport)
    return transport
