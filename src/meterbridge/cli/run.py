"""``meterbridge run --config FILE``: the gateway daemon (sources, store, sinks, web dashboard)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from meterbridge.cli.app import app

__all__ = ["run", "serve_config"]

log = logging.getLogger("meterbridge.run")


async def serve_config(config: Any, stop: asyncio.Event, *, web: bool | None = None) -> Any:
    """Run the gateway of ``config`` and, when enabled, the web dashboard over its store, until ``stop``."""
    from meterbridge.gateway.metrics import GatewayMetrics
    from meterbridge.gateway.runner import open_configured_store, run_gateway

    store = await asyncio.to_thread(open_configured_store, config)
    metrics = GatewayMetrics()
    server = None
    server_task = None
    try:
        if config.web.enabled if web is None else web:
            try:
                from meterbridge.web.app import create_app
                from meterbridge.web.server import build_server
            except ImportError as exc:
                log.warning("web dashboard not available (%s); running without it", exc)
            else:
                token = config.web.token.get_secret_value() if config.web.token else None
                web_app = create_app(
                    store,
                    token=token,
                    reports_dir=config.web.reports_dir,
                    timezone=config.web.zone(),
                    registry=metrics.registry,  # poll latency and errors, readings stored, on /metrics
                )
                server = build_server(web_app, config.web.host, config.web.port, token=token)
                server_task = asyncio.create_task(server.serve(), name="web")
        stats = await run_gateway(config, stop, store=store, metrics=metrics)
    finally:
        if server is not None and server_task is not None:
            server.should_exit = True
            await asyncio.gather(server_task, return_exceptions=True)
        await asyncio.to_thread(store.close)
    return stats


@app.command("run")
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="The gateway's YAML configuration file.")],
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    no_web: Annotated[bool, typer.Option("--no-web", help="Do not start the web dashboard.")] = False,
) -> None:
    """Run the gateway: read every configured meter and bus, validate, store, publish (until SIGTERM/Ctrl-C)."""
    from meterbridge.errors import ConfigError, MeterbridgeError
    from meterbridge.gateway.config import load_config

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        typer.echo(f"meterbridge: refusing to start: {exc}", err=True)
        raise typer.Exit(2) from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_config(cfg, stop, web=False if no_web else None)

    try:
        asyncio.run(main())
    except ConfigError as exc:
        typer.echo(f"meterbridge: refusing to start: {exc}", err=True)
        raise typer.Exit(2) from None
    except MeterbridgeError as exc:
        typer.echo(f"meterbridge: {exc}", err=True)
        raise typer.Exit(1) from None
