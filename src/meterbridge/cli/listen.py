"""``meterbridge listen PORT``: print the readings of DLMS pushes (E450 customer interface, M-Bus framed) as they come."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["ASSUMED_UTC", "PushHints", "listen", "parse_key", "parse_scalers"]


class _AssumedUtc(tzinfo):
    """UTC, for pushed date-times without a UTC deviation when --timezone was not given: the same instant
    as UTC, but recognisable, so that ``listen`` can say once that it assumed UTC."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "UTC"

    def __repr__(self) -> str:
        return "ASSUMED_UTC"


ASSUMED_UTC: tzinfo = _AssumedUtc()

_CURRENTS = ((31, 7, 0), (51, 7, 0), (71, 7, 0))  # L1..L3 current: E450 compact pushes send 1/100 A

TIMEZONE_HINT = (
    "hint: pushed times carry no UTC offset; reading them as UTC — pass --timezone Europe/Zurich "
    "(the meter's zone)"
)
SCALER_HINT = (
    "hint: current registers (31/51/71.7.0) came without a scaler; E450 compact pushes send 1/100 A — pass "
    "--scaler 1-0:31.7.0=-2 --scaler 1-0:51.7.0=-2 --scaler 1-0:71.7.0=-2"
)


class PushHints:
    """One-time hints for a listener: times read as UTC for want of --timezone, currents without scaler."""

    def __init__(self, *, timezone_given: bool, scaled: set[tuple[int, int, int]]) -> None:
        self._timezone_given = timezone_given
        self._scaled = scaled  # (c, d, e) of the registers given a --scaler
        self.shown: set[str] = set()

    def check(self, push: object) -> list[str]:
        """The hints this push calls for that were not given yet."""
        from meterbridge.obis import ObisCode
        from meterbridge.protocols.dlms.push import PushReadings

        assert isinstance(push, PushReadings)
        out: list[str] = []
        if not self._timezone_given and TIMEZONE_HINT not in self.shown:
            stamps = [push.timestamp, *(r.value for r in push.readings if isinstance(r.value, datetime))]
            if any(s.tzinfo is ASSUMED_UTC for s in stamps):
                out.append(TIMEZONE_HINT)
        if SCALER_HINT not in self.shown:
            for reading in push.readings:
                key = reading.key
                if (
                    isinstance(key, ObisCode)
                    and (key.c, key.d, key.e) in _CURRENTS
                    and (key.c, key.d, key.e) not in self._scaled
                    and type(reading.value) is int  # a scaler (pushed or given) makes it a Decimal
                ):
                    out.append(SCALER_HINT)
                    break
        self.shown.update(out)
        return out


def parse_key(text: str | None, option: str) -> bytes | None:
    """A 16-byte key from hex (spaces and colons allowed); the error never repeats the key."""
    if text is None:
        return None
    try:
        key = bytes.fromhex(text.replace(" ", "").replace(":", ""))
    except ValueError:
        key = b""
    if len(key) != 16:
        raise typer.BadParameter(f"{option} must be 32 hex digits (16 bytes)", param_hint=option)
    return key


def parse_scalers(items: list[str]) -> dict[object, object]:
    """``OBIS=N`` (N: power of ten) or ``OBIS=N:UNIT`` to ``{ObisCode: RegisterFormat}``."""
    from meterbridge.obis import ObisCode
    from meterbridge.protocols.dlms.push import RegisterFormat

    formats: dict[object, object] = {}
    for item in items:
        code, sep, rest = item.partition("=")
        scaler, _, unit = rest.partition(":")
        try:
            if not sep:
                raise ValueError("expected OBIS=N")
            formats[ObisCode.parse(code)] = RegisterFormat(int(scaler), unit or None)
        except ValueError as exc:
            raise typer.BadParameter(f"{item!r}: {exc}", param_hint="--scaler") from None
    return formats


@app.command()
def listen(
    port: Annotated[
        str,
        typer.Argument(
            help="Where the pushes arrive: a serial device (/dev/ttyUSB0, /dev/serial/by-id/..., the PTY path of "
            "`meterbridge simulate e450 --cii`), read at 2400 baud 8E1 unless ?line= says otherwise; "
            "tcp://HOST:PORT, udp://HOST:PORT, rfc2217://HOST:PORT. Add ?reopen=1 to wait for a port that "
            "vanishes and comes back."
        ),
    ],
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar="METERBRIDGE_GUEK",
            help="Encryption key (GUEK), 32 hex digits, for encrypted pushes.",
            show_default=False,
        ),
    ] = None,
    auth_key: Annotated[
        str | None,
        typer.Option(
            "--auth-key",
            envvar="METERBRIDGE_GAK",
            help="Authentication key (GAK), 32 hex digits: with it the GCM tag is verified; without it "
            "readings are flagged unauthenticated.",
            show_default=False,
        ),
    ] = None,
    scaler: Annotated[
        list[str] | None,
        typer.Option(
            "--scaler",
            help="Scaler for a pushed register, OBIS=N (value x 10^N) or OBIS=N:UNIT, repeatable "
            "(e.g. 1-0:31.7.0=-2 for currents pushed in 0.01 A).",
        ),
    ] = None,
    framing: Annotated[
        str,
        typer.Option("--framing", help="auto, hdlc (E450 customer interface) or mbus (M-Bus long frames)."),
    ] = "auto",
    meter_id: Annotated[
        str | None,
        typer.Option("--meter-id", help="Meter id for pushes that do not carry their logical device name."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="Time zone of pushed date-times that carry no UTC deviation (the E450 sends local time), "
            "e.g. Europe/Zurich. Default: UTC, with a one-time hint on stderr when a push needs it.",
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", help="Stop after this many pushes (0: run until stopped).")
    ] = 0,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per reading (JSON lines).")
    ] = False,
    log_frames: Annotated[
        str | None, typer.Option("--log-frames", help="Hex dump of raw traffic with timestamps (PATH or -).")
    ] = None,
) -> None:
    """Listen passively for DLMS pushes and print their readings as they come; errors go to stderr."""
    import asyncio

    from meterbridge.errors import MeterbridgeError
    from meterbridge.protocols.dlms.security import SecurityKeys

    if framing not in ("auto", "hdlc", "mbus"):
        raise typer.BadParameter(
            f"--framing must be auto, hdlc or mbus, not {framing!r}", param_hint="--framing"
        )
    if count < 0:
        raise typer.BadParameter("--count must be 0 or more", param_hint="--count")
    guek = parse_key(key, "--key")
    gak = parse_key(auth_key, "--auth-key")
    if gak is not None and guek is None:
        raise typer.BadParameter(
            "--auth-key needs --key (the pushes are encrypted with the GUEK)", param_hint="--auth-key"
        )
    formats = parse_scalers(scaler or [])
    zone: tzinfo = ASSUMED_UTC
    if timezone is not None:
        try:
            from zoneinfo import ZoneInfo

            zone = ZoneInfo(timezone)
        except (ValueError, KeyError, OSError):
            raise typer.BadParameter(f"unknown time zone {timezone!r}", param_hint="--timezone") from None
    hints = PushHints(
        timezone_given=timezone is not None,
        scaled={(code.c, code.d, code.e) for code in formats},  # type: ignore[attr-defined]
    )
    keys = SecurityKeys(guek, gak) if guek is not None else None
    counts = {"pushes": 0, "errors": 0}

    async def main() -> None:
        from meterbridge.drivers.push_listener import PushListener
        from meterbridge.protocols.dlms.push import PushReadings
        from meterbridge.transports import MBUS_2400, LoggedTransport, open_frame_log, open_transport

        transport = await open_transport(port, line=MBUS_2400)
        if log_frames:
            transport = LoggedTransport(transport, open_frame_log(log_frames))
        listener = PushListener(
            transport,
            keys=keys,
            formats=formats,  # type: ignore[arg-type]
            meter_id=meter_id,
            framing=framing,  # type: ignore[arg-type]
            default_tz=zone,
        )
        try:
            async for event in listener.pushes():
                if isinstance(event, PushReadings):
                    counts["pushes"] += 1
                    for hint in hints.check(event):
                        typer.echo(hint, err=True)
                    _print_push(event, json_out)
                    if count and counts["pushes"] >= count:
                        return
                else:
                    counts["errors"] += 1
                    typer.echo(f"error: {event} (skipped, listening on)", err=True)
        finally:
            await transport.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    except (MeterbridgeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if counts["errors"] and not counts["pushes"]:
        raise typer.Exit(1)


def _print_push(push: object, json_out: bool) -> None:
    from meterbridge.obis import ObisCode, lookup
    from meterbridge.protocols.dlms.push import PushReadings

    assert isinstance(push, PushReadings)
    rows = []
    for reading in push.readings:
        quantity = lookup(reading.key) if isinstance(reading.key, ObisCode) else None
        row: dict[str, object] = {
            "meter": reading.meter_id,
            "obis": str(reading.key),
            "name": reading.name or (quantity.name if quantity else None),
            "value": reading.value,
            "unit": reading.unit,
            "timestamp": reading.timestamp,
            "authenticated": push.authenticated,
        }
        if not reading.ok:
            row["quality"] = reading.quality.names
        rows.append(row)
    if json_out:
        from meterbridge.cli.decode import to_json

        for row in rows:
            typer.echo(to_json(row))
        return
    from rich.console import Console
    from rich.table import Table

    security = {None: "plain", True: "authenticated", False: "decrypted, tag not checked"}[push.authenticated]
    table = Table(title=f"{push.meter_id}  {push.timestamp.isoformat()}  ({security})")
    for column in ("obis", "name", "value", "unit"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in rows:
        table.add_row(str(row["obis"]), str(row["name"] or ""), str(row["value"]), str(row["unit"] or ""))
    Console().print(table)
