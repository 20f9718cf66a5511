"""Typer option types shared by the M-Bus commands (``scan``, ``read mbus``), declared once."""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["BaudOption", "ExtraTimeoutOption", "LogFramesOption", "RetriesOption"]

BaudOption = Annotated[int, typer.Option("--baud", help="Baud rate (8E1).")]
RetriesOption = Annotated[int, typer.Option("--retries", help="Repeats of a garbled answer.")]
ExtraTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--extra-timeout", help="Seconds added to the reply window (default 0.1 for tcp://, else 0)."
    ),
]
LogFramesOption = Annotated[
    str | None, typer.Option("--log-frames", help="Hex dump of raw traffic with timestamps (PATH or -).")
]
