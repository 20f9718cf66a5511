"""The ``meterbridge`` command line: thin, calls the layers below."""

from __future__ import annotations

import importlib
import pkgutil

from meterbridge.cli.app import app

__all__ = ["app", "main"]


def _load_commands() -> None:
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name != "app" and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


def main() -> None:
    _load_commands()
    app()
