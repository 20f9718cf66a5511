"""``meterbridge export``: stored readings as CSV or JSON lines."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from meterbridge.cli.app import app

__all__ = ["export", "parse_when"]


def parse_when(text: str, option: str) -> datetime:
    """``2026-03-01``, ``2026-03-01T12:00``, ``2026-03-01T12:00:00+01:00`` -> aware datetime (UTC if none)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO date or date-time (e.g. 2026-03-01T12:00)", param_hint=option
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def store_url(config: Path | None, store: str | None) -> str:
    if store:
        return store
    if config is not None:
        from meterbridge.errors import ConfigError
        from meterbridge.gateway.config import load_config

        try:
            return load_config(config).store.url
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    return "var/meterbridge.sqlite"


def write_export(readings: Any, out: IO[str], fmt: str) -> int:
    """Write readings as CSV or JSON lines; return how many."""
    import csv
    import json

    from meterbridge.sinks.store import encode_value

    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "meter_id", "key", "name", "value", "unit", "quality"])
        for r in readings:
            _, text, _ = encode_value(r.value)
            writer.writerow(
                [
                    r.timestamp.isoformat(),
                    r.meter_id,
                    r.key_text,
                    r.name or "",
                    "" if text is None else text,
                    r.unit or "",
                    "|".join(r.quality.names),
                ]
            )
            count += 1
    else:
        for r in readings:
            value_type, text, _ = encode_value(r.value)
            value: Any = text
            if value_type in {"int", "bool"}:
                value = int(text) if value_type == "int" else text == "1"  # type: ignore[arg-type]
            elif value_type == "none":
                value = None
            out.write(
                json.dumps(
                    {
                        "timestamp": r.timestamp.isoformat(),
                        "meter_id": r.meter_id,
                        "key": r.key_text,
                        "name": r.name,
                        "value": value,
                        "value_type": value_type,
                        "unit": r.unit,
                        "quality": r.quality.names,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
            count += 1
    return count


@app.command("export")
def export(
    from_: Annotated[
        str,
        typer.Option(
            "--from", help="Start (inclusive), ISO date or date-time; UTC unless an offset is given."
        ),
    ],
    to: Annotated[str, typer.Option("--to", help="End (exclusive), ISO date or date-time.")],
    meter: Annotated[str | None, typer.Option("--meter", help="Only this meter id.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Take the store from this configuration.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL or SQLite path (default var/meterbridge.sqlite).")
    ] = None,
) -> None:
    """Export stored readings in [--from, --to) as CSV or JSON lines (exact values, flags as names)."""
    if fmt not in {"csv", "jsonl"}:
        raise typer.BadParameter("expected csv or jsonl", param_hint="--format")
    start, end = parse_when(from_, "--from"), parse_when(to, "--to")
    if end <= start:
        raise typer.BadParameter("--to must be after --from", param_hint="--to")
    from meterbridge.errors import MeterbridgeError
    from meterbridge.sinks.store import open_store

    url = store_url(config, store)
    if "://" not in url and not Path(url).exists():
        typer.echo(f"meterbridge export: no store at {url}", err=True)
        raise typer.Exit(1)
    try:
        with open_store(url) as db:
            readings = db.iter_readings(meter, start, end)
            if output is None:
                count = write_export(readings, sys.stdout, fmt)
            else:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = write_export(readings, out, fmt)
    except MeterbridgeError as exc:
        typer.echo(f"meterbridge export: {exc}", err=True)
        raise typer.Exit(1) from None
    if output is not None:
        typer.echo(f"{count} readings written to {output}", err=True)
