"""``meterbridge read``: read one meter now (sub-app; ``read mbus`` here, ``read optical`` elsewhere).

Other readers register on :data:`read_app` from their own module.
"""

from __future__ import annotations

from typing import Annotated

import typer

from meterbridge.cli._options import BaudOption, ExtraTimeoutOption, LogFramesOption, RetriesOption
from meterbridge.cli.app import app

__all__ = ["read_app", "read_mbus"]

read_app = typer.Typer(name="read", help="Read one meter now and print its values.", no_args_is_help=True)
app.add_typer(read_app, name="read")


@read_app.command("mbus")
def read_mbus(
    port: Annotated[
        str, typer.Argument(help="Serial device, tcp://HOST:PORT (M-Bus/TCP gateway), rfc2217:// or pty://.")
    ],
    target: Annotated[
        str,
        typer.Argument(help="Primary address 0..250, or a 16 hex digit secondary address (as scan prints)."),
    ],
    baud: BaudOption = 2400,
    retries: RetriesOption = 2,
    extra_timeout: ExtraTimeoutOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the telegrams as JSON lines.")] = False,
    log_frames: LogFramesOption = None,
) -> None:
    """Read every telegram of one M-Bus meter (multi-telegram, FCB) and print its records."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from meterbridge.cli._decode_mbus import response_to_dict
    from meterbridge.cli.decode import to_json
    from meterbridge.drivers.mbus_master import MBusMaster, ReadResult, parse_target
    from meterbridge.errors import MeterbridgeError
    from meterbridge.transports import LineSettings, LoggedTransport, open_frame_log, open_transport
    from meterbridge.transports.line import Parity

    try:
        parsed = parse_target(target)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        line = LineSettings(baud, 8, Parity.EVEN, 1)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--baud") from None
    extra = extra_timeout if extra_timeout is not None else (0.1 if port.startswith("tcp://") else 0.0)

    async def main() -> ReadResult:
        transport = await open_transport(port, line=line)
        log = open_frame_log(log_frames) if log_frames else None
        if log is not None:
            transport = LoggedTransport(transport, log)
        try:
            return await MBusMaster(transport, line=line, retries=retries, extra_timeout=extra).read(parsed)
        finally:
            await transport.close()
            if log is not None:
                log.close()

    try:
        result = asyncio.run(main())
    except (MeterbridgeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        for response in result.responses:
            typer.echo(to_json(response_to_dict(response)))
        return
    table = Table(title=f"M-Bus {target} on {port}: {len(result.responses)} telegram(s)")
    table.add_column("key", overflow="fold")  # a key is copied into configurations: never cut it short
    for column in ("value", "unit", "quality"):
        table.add_column(column)
    readings = result.readings()
    for reading in readings:
        table.add_row(
            reading.key_text, str(reading.value), reading.unit or "", ",".join(reading.quality.names)
        )
    Console().print(table)
    if readings:
        typer.echo(f"meter {readings[0].meter_id}, {len(readings)} values, {result.retries} retries")
