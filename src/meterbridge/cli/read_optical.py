"""``meterbridge read optical PORT``: read a meter through its optical port (IEC 62056-21).

Mode C without a password: the data readout (every value, or the ``--obis`` ones).
Mode C with ``--password``: programming mode, one R1 read per ``--obis`` code.
Mode E: the line is handed to HDLC and the DLMS client driver reads the ``--obis`` codes, as
the public client (16) or, with ``--password``, as the reading client (32) with LLS.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meterbridge.cli.read import read_app

__all__ = ["read_optical"]


@read_app.command("optical")
def read_optical(
    port: Annotated[
        str,
        typer.Argument(
            help="Serial device of the optical head (/dev/ttyUSB0, /dev/serial/by-id/...), or rfc2217://, tcp://."
        ),
    ],
    mode: Annotated[
        str, typer.Option("--mode", help="c: IEC 62056-21 readout / programming mode; e: hand over to DLMS.")
    ] = "c",
    obis: Annotated[
        list[str] | None,
        typer.Option(
            "--obis", help="Register to print (repeatable; any OBIS notation, e.g. 1.8.0 or 1-0:32.7.0.255)."
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="METERBRIDGE_IEC_PASSWORD",
            help="Mode c: P1 password, read the --obis registers in programming mode. "
            "Mode e: DLMS LLS password (read as client 32 unless --client says otherwise).",
            show_default=False,
        ),
    ] = None,
    client: Annotated[
        int | None,
        typer.Option(
            "--client",
            help="Mode e: DLMS client address. Default: 16 (public client, no authentication) without "
            "--password; 32 (Landis+Gyr reading client, LLS) with --password.",
            min=1,
            max=127,
            show_default=False,
        ),
    ] = None,
    baud: Annotated[
        int | None, typer.Option("--baud", help="Highest speed to agree on (default: the meter's).")
    ] = None,
    address: Annotated[
        str, typer.Option("--address", help="Device address for the sign-on (default: any meter).")
    ] = "",
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Longest silence accepted while an IEC 62056-21 message is due (s); DLMS in mode e waits 3 s.",
        ),
    ] = 1.5,
    retries: Annotated[
        int,
        typer.Option(
            "--retries", help="Mode c: further attempts after a garbled or missing readout or answer."
        ),
    ] = 2,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object per value.")] = False,
    log_frames: Annotated[
        str | None, typer.Option("--log-frames", help="Hex dump of raw traffic with timestamps (PATH or -).")
    ] = None,
) -> None:
    """Read a meter through its optical port (IEC 62056-21 mode C readout or programming mode, mode E to DLMS)."""
    import asyncio

    from meterbridge.cli.decode import to_json
    from meterbridge.drivers.dlms_client import AssociationRefused
    from meterbridge.drivers.optical import PUBLIC_CLIENT, OpticalReader, read_mode_e
    from meterbridge.errors import MeterbridgeError
    from meterbridge.obis import ObisCode
    from meterbridge.transports import IEC_SIGN_ON, LoggedTransport, open_frame_log, open_transport

    chosen = mode.lower()
    if chosen not in ("c", "e"):
        raise typer.BadParameter(f"--mode must be c or e, got {mode!r}")
    try:
        wanted = [ObisCode.parse(code) for code in obis or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if chosen == "e" and not wanted:
        raise typer.BadParameter("--mode e reads registers over DLMS: name them with --obis")
    if chosen == "e" and client == PUBLIC_CLIENT and password is not None:
        raise typer.BadParameter(
            f"--client {PUBLIC_CLIENT} is the public client, which never authenticates: "
            "drop --password or pick another --client (e.g. 32)"
        )
    if chosen == "c" and password is not None and not wanted:
        raise typer.BadParameter("--password reads registers in programming mode: name them with --obis")

    rows: list[dict[str, object]] = []
    notes: list[str] = []

    async def main() -> None:
        transport = await open_transport(port, line=IEC_SIGN_ON)
        frame_log = open_frame_log(log_frames) if log_frames else None
        if frame_log is not None:
            transport = LoggedTransport(transport, frame_log)
        reader = OpticalReader(
            transport, baud=baud, address=address, response_timeout=timeout, retries=retries
        )
        try:
            if chosen == "e":
                readings = await read_mode_e(
                    reader, [str(c) for c in wanted], password=password, client=client
                )
                rows.extend(_row(r) for r in readings)
            elif password is not None:
                registers = await reader.read_registers([c.short for c in wanted], password=password)
                notes.extend(registers.attempts)
                for code, register in zip(wanted, registers.registers, strict=True):
                    if register.reading is not None:
                        rows.append(_row(register.reading))
                    else:
                        rows.append({"obis": str(code), "value": None, "error": register.error})
            else:
                readout = await reader.readout()
                notes.extend(readout.attempts)
                readings = list(readout.readings)
                if wanted:
                    by_code = {r.key: r for r in readings}
                    for code in wanted:
                        if code in by_code:
                            rows.append(_row(by_code[code]))
                        else:
                            rows.append({"obis": str(code), "value": None, "error": "not in the readout"})
                else:
                    rows.extend(_row(r) for r in readings)
        finally:
            await transport.close()
            if frame_log is not None:
                frame_log.close()

    try:
        asyncio.run(main())
    except (MeterbridgeError, OSError) as exc:
        hint = ""
        if chosen == "e" and isinstance(exc, AssociationRefused) and password is not None:
            hint = " (wrong --password, or this --client has another password or none)"
        typer.echo(f"error: {exc}{hint}", err=True)
        raise typer.Exit(2) from None
    for note in notes:
        typer.echo(f"recovered: {note}", err=True)
    if json_out:
        for row in rows:
            typer.echo(to_json(row))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"optical readout on {port}")
        for column in ("obis", "value", "unit", "meter"):
            table.add_column(column)
        for row in rows:
            value = row.get("value")
            table.add_row(
                str(row.get("obis")),
                f"({row['error']})" if row.get("error") else str(value),
                str(row.get("unit") or ""),
                str(row.get("meter") or ""),
            )
        Console().print(table)
    if any(row.get("error") for row in rows):
        raise typer.Exit(1)


def _row(reading: object) -> dict[str, object]:
    from meterbridge.readings import Quality, Reading

    assert isinstance(reading, Reading)
    row: dict[str, object] = {
        "meter": reading.meter_id,
        "obis": str(reading.key),
        "value": reading.value,
        "unit": reading.unit,
        "timestamp": reading.timestamp,
        "authenticated": None,
    }
    if reading.quality is not Quality.OK:
        row["quality"] = reading.quality.names
    return row
