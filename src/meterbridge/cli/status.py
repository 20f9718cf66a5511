"""``meterbridge status``: meters, their last reading, active problems and outbox depth, from the store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["status"]


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


@app.command("status")
def status(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Take the store from this configuration.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL or SQLite path (default var/meterbridge.sqlite).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show every meter with its last reading, active quality problems and each sink's outbox depth."""
    import json

    from rich.console import Console
    from rich.table import Table

    from meterbridge.cli.export import store_url
    from meterbridge.errors import MeterbridgeError
    from meterbridge.sinks.base import publishable
    from meterbridge.sinks.store import QualityEvent, open_store, redact_url

    url = store_url(config, store)
    if "://" not in url and not Path(url).exists():
        typer.echo(f"meterbridge status: no store at {url} (has the gateway run?)", err=True)
        raise typer.Exit(1)
    now = datetime.now(UTC)
    try:
        with open_store(url) as db:
            meters = db.meters()
            latest = {m.id: db.latest(m.id) for m in meters}
            problems = db.events(limit=1000)
            depths = {sink: db.outbox_depth(sink) for sink in db.sinks()}
    except MeterbridgeError as exc:
        typer.echo(f"meterbridge status: {exc}", err=True)
        raise typer.Exit(1) from None
    # an event is a current problem when its newest state (per meter, key, kind) is active
    current: dict[tuple[str, str | None, str], QualityEvent] = {}
    for event in problems:  # newest first
        current.setdefault((event.meter_id, event.key, event.kind), event)
    active = [e for e in current.values() if e.active]
    if as_json:
        data = {
            "store": redact_url(str(url)),
            "outbox": depths,
            "meters": [
                {
                    "id": m.id,
                    "name": m.name,
                    "protocol": m.protocol,
                    "address": m.address,
                    "last_seen": m.last_seen.isoformat() if m.last_seen else None,
                    "registers": len(latest[m.id]),
                    "flagged": sum(1 for r in latest[m.id].values() if not publishable(r)),
                }
                for m in meters
            ],
            "problems": [
                {
                    "meter_id": e.meter_id,
                    "kind": e.kind,
                    "key": e.key,
                    "message": e.message,
                    "since": e.timestamp.isoformat(),
                }
                for e in active
            ],
        }
        typer.echo(json.dumps(data, indent=2))
        return
    # one line per meter: ids, ages and counts keep their width (they are what one looks up); long names
    # and addresses are cut short when the terminal is narrow (``--json`` has them whole)
    console = Console()
    rows = []
    for m in meters:
        regs = latest[m.id]
        flagged = sum(1 for r in regs.values() if not publishable(r))
        rows.append(
            (
                m.id,
                m.name or "",
                m.protocol or "",
                m.address or "",
                _age(m.last_seen, now),
                f"{len(regs)}" + (f" ({flagged} flagged)" if flagged else ""),
            )
        )
    headers = ("meter", "name", "protocol", "address", "last reading", "registers")
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]
    # what the terminal leaves for name and address (two spaces between columns)
    room = console.width - 2 * (len(headers) - 1) - sum(w for i, w in enumerate(widths) if i not in (1, 3))
    name_w = max(4, min(widths[1], room // 3))
    address_w = max(7, min(widths[3], room - name_w))
    name_w = max(4, min(widths[1], room - address_w))
    table = Table(
        title=f"meters ({redact_url(str(url))})",
        box=None,
        padding=(0, 1),
        pad_edge=False,
        title_justify="left",
        header_style="bold",
    )
    for header in headers:
        table.add_column(header, no_wrap=True, justify="right" if header == "registers" else "left")
    for row in rows:
        table.add_row(row[0], _cut(row[1], name_w), row[2], _cut(row[3], address_w), row[4], row[5])
    console.print(table)
    if active:
        console.print("active problems:")
        for e in active:
            where = f" {e.key}" if e.key else ""
            console.print(
                f"  {e.meter_id} {e.kind}{where}, {_age(e.timestamp, now)}: {e.message}", highlight=False
            )
    else:
        console.print("no active problems")
    if depths:
        console.print("outbox: " + ", ".join(f"{name} {depth} waiting" for name, depth in depths.items()))
    else:
        console.print("outbox: no sink registered")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
