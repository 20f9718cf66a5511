"""``meterbridge scan PORT``: find the M-Bus slaves on a bus (primary or secondary scan)."""

from __future__ import annotations

from typing import Annotated

import typer

from meterbridge.cli._options import BaudOption, ExtraTimeoutOption, LogFramesOption, RetriesOption
from meterbridge.cli.app import app

__all__ = ["scan"]


@app.command()
def scan(
    port: Annotated[
        str, typer.Argument(help="Serial device, tcp://HOST:PORT (M-Bus/TCP gateway), rfc2217:// or pty://.")
    ],
    secondary: Annotated[
        bool,
        typer.Option("--secondary", help="Secondary scan (wildcard selection) instead of primary 0..250."),
    ] = False,
    baud: BaudOption = 2400,
    first: Annotated[int, typer.Option("--from", help="Primary scan: first address.")] = 0,
    last: Annotated[int, typer.Option("--to", help="Primary scan: last address.")] = 250,
    retries: RetriesOption = 2,
    extra_timeout: ExtraTimeoutOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    log_frames: LogFramesOption = None,
) -> None:
    """Scan an M-Bus: primary addresses 0..250 (SND_NKE) or all secondary addresses."""
    import asyncio
    import json

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from meterbridge.drivers.mbus_master import MBusMaster
    from meterbridge.errors import MeterbridgeError
    from meterbridge.transports import LineSettings, LoggedTransport, open_frame_log, open_transport
    from meterbridge.transports.line import Parity

    if not 0 <= first <= last <= 250:
        raise typer.BadParameter("--from/--to: 0 <= from <= to <= 250")
    try:
        line = LineSettings(baud, 8, Parity.EVEN, 1)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--baud") from None
    extra = extra_timeout if extra_timeout is not None else (0.1 if port.startswith("tcp://") else 0.0)
    console = Console(stderr=True)

    async def main() -> dict[str, object]:
        transport = await open_transport(port, line=line)
        log = open_frame_log(log_frames) if log_frames else None
        if log is not None:
            transport = LoggedTransport(transport, log)
        master = MBusMaster(transport, line=line, retries=retries, extra_timeout=extra)
        try:
            with Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TimeElapsedColumn(), console=console, disable=json_out and not console.is_terminal,
            ) as progress:  # fmt: skip
                task = progress.add_task("scanning", total=None)

                def step(what: str, done: int, total: int) -> None:
                    progress.update(task, description=what, completed=done, total=total)

                if secondary:
                    result = await master.scan_secondary(progress=step)
                    return {
                        "mode": "secondary",
                        "found": [e.to_dict() for e in result.found],
                        "probes": result.probes,
                        "collisions": result.collisions,
                        "unresolved": list(result.unresolved),
                        "seconds": round(result.line_time, 3),
                    }
                presult = await master.scan_primary(range(first, last + 1), progress=step)
                return {
                    "mode": "primary",
                    "found": [e.to_dict() for e in presult.found],
                    "probes": presult.probes,
                    "retries": presult.retries,
                    "collisions": list(presult.collisions),
                    "seconds": round(presult.line_time, 3),
                }
        finally:
            await transport.close()
            if log is not None:
                log.close()

    try:
        outcome = asyncio.run(main())
    except (MeterbridgeError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if json_out:
        typer.echo(json.dumps(outcome, ensure_ascii=False))
        return
    table = Table(title=f"M-Bus {outcome['mode']} scan of {port} at {baud} baud")
    for column in ("address", "secondary", "manufacturer", "version", "medium", "note"):
        table.add_column(column)
    found = outcome["found"]
    assert isinstance(found, list)
    for entry in found:
        address = entry.get("address", entry.get("primary"))
        note = "collision" if entry.get("collision") else ""
        if entry.get("retries"):
            note = f"{note} retries={entry['retries']}".strip()
        table.add_row(
            str(address), str(entry["secondary"] or ""), str(entry["manufacturer"] or ""),
            "" if entry["version"] is None else str(entry["version"]), str(entry["medium"] or ""), note,
        )  # fmt: skip
    Console().print(table)
    summary = f"{len(found)} found, {outcome['probes']} probes, {outcome['seconds']} s"
    if outcome["mode"] == "primary" and outcome["collisions"]:
        summary += f", collisions at {outcome['collisions']}"
    if outcome["mode"] == "secondary" and outcome["unresolved"]:
        summary += f", unresolved {outcome['unresolved']}"
    typer.echo(summary)
