"""``meterbridge version``."""

from __future__ import annotations

import typer

from meterbridge.cli.app import app


@app.command()
def version() -> None:
    """Print meterbridge's version."""
    from meterbridge import __version__

    typer.echo(__version__)
