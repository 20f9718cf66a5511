"""``meterbridge ingest``: the fleet ingest (MQTT reading stream -> PostgreSQL), one copy per process."""

from __future__ import annotations

import typer

from meterbridge.cli.app import app

__all__ = ["ingest"]


@app.command()
def ingest(
    mqtt: str = typer.Option(
        ..., "--mqtt", help="Broker URL: mqtt://[user[:password]@]host[:port] or mqtts://... (TLS)."
    ),
    postgres: str = typer.Option(
        ...,
        "--postgres",
        help="PostgreSQL DSN or URL, e.g. postgresql://ingest@db/fleet (tables are created).",
    ),
    group: str = typer.Option(
        "meterbridge-ingest",
        "--group",
        help="Shared-subscription group ($share/<group>/...): copies in one group split the stream.",
    ),
    prefix: str = typer.Option("meterbridge", "--prefix", help="Topic prefix the gateways publish under."),
    client_id: str | None = typer.Option(
        None,
        "--client-id",
        help="MQTT client id; must stay the same when this copy restarts (its session keeps unacknowledged "
        "messages). Default: meterbridge-ingest-<hostname>.",
    ),
    ca_file: str | None = typer.Option(None, "--ca-file", help="CA certificate for mqtts:// brokers."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Most messages written per transaction."),
    session_expiry: int = typer.Option(
        86_400,
        "--session-expiry",
        min=0,
        help="Seconds the broker keeps this copy's session while it is away.",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Log every connection and a minute's counts."
    ),
) -> None:
    """Write every reading of the gateways' MQTT stream to PostgreSQL, once.

    Several copies with the same --group share the load (MQTT 5 shared subscription). A message is
    acknowledged only after its row is committed, and a redelivered message never makes a second row
    (primary key gateway + seq). Stops on Ctrl-C or SIGTERM.
    """
    import logging
    import signal
    import threading

    from meterbridge.errors import MeterbridgeError
    from meterbridge.sinks.ingest import IngestService, IngestSettings, default_client_id
    from meterbridge.sinks.mqtt import MqttSettings

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        settings = IngestSettings(
            mqtt=MqttSettings.from_url(mqtt, ca_file=ca_file),
            dsn=postgres,
            group=group,
            prefix=prefix,
            batch_size=batch_size,
            session_expiry=session_expiry,
            client_id=client_id or default_client_id(),
        )
        service = IngestService(settings)
    except MeterbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        service.run_forever(stop)
    except MeterbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    s = service.stats
    typer.echo(
        f"ingest {settings.client_id}: received {s.received}, inserted {s.inserted}, "
        f"duplicates {s.duplicates}, rejected {s.rejected}"
    )
