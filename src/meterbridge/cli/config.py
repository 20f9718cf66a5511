"""``meterbridge config check FILE`` and ``meterbridge config example``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["config_app"]

config_app = typer.Typer(
    name="config",
    help="Check a gateway configuration file or print a commented example of every option.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The YAML configuration to validate.")],
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing when the file is valid.")
    ] = False,
) -> None:
    """Validate FILE; print every problem with its line and key path (exit 1), or a summary (exit 0)."""
    from meterbridge.errors import ConfigError
    from meterbridge.gateway.config import load_config
    from meterbridge.sinks.store import redact_url

    try:
        config = load_config(file)
    except ConfigError as exc:
        typer.echo(str(exc) if exc.where and str(exc).startswith(exc.where) else f"{exc}", err=True)
        raise typer.Exit(1) from None
    if not quiet:
        mqtt = redact_url(config.sinks.mqtt.url) if config.sinks.mqtt else "off"
        web = f"http://{config.web.host}:{config.web.port}/" if config.web.enabled else "off"
        typer.echo(
            f"{file}: valid - {len(config.meters)} meters, {len(config.buses)} buses, "
            f"store {redact_url(config.store.url)}, mqtt {mqtt}, web {web}"
        )


@config_app.command("example")
def example() -> None:
    """Print a commented configuration that uses every option."""
    from meterbridge.gateway.config import EXAMPLE

    typer.echo(EXAMPLE, nl=False)
