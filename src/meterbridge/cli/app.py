"""The typer application every command module registers itself on.

Each ``meterbridge.cli.<command>`` module imports ``app`` from here and decorates
its functions; ``meterbridge.cli.main`` imports all of them. Heavy imports stay
inside the command functions so that ``meterbridge --help`` starts fast.
"""

from __future__ import annotations

import typer

__all__ = ["app"]

app = typer.Typer(
    name="meterbridge",
    help="Read smart meters (M-Bus, IEC 62056-21, DLMS/COSEM), simulate them, and run the gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Read smart meters (M-Bus, IEC 62056-21, DLMS/COSEM), simulate them, and run the gateway."""
