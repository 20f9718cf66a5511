"""The layer rules of ARCHITECTURE.md, checked on the source (not by convention)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "meterbridge"

FORBIDDEN = {
    "protocols": {
        "asyncio",
        "serial",
        "socket",
        "threading",
        "selectors",
        "time",
        "logging",
        "meterbridge.transports",
        "meterbridge.drivers",
        "meterbridge.simulator",
        "meterbridge.gateway",
        "meterbridge.sinks",
        "meterbridge.web",
        "meterbridge.cli",
    },
    "transports": {
        "meterbridge.protocols",
        "meterbridge.drivers",
        "meterbridge.gateway",
        "meterbridge.sinks",
        "meterbridge.web",
        "meterbridge.simulator",
        "meterbridge.cli",
    },
    "drivers": {"meterbridge.sinks", "meterbridge.gateway", "meterbridge.web", "meterbridge.cli"},
    "simulator": {
        "meterbridge.drivers",
        "meterbridge.gateway",
        "meterbridge.sinks",
        "meterbridge.web",
        "meterbridge.cli",
    },
    "gateway": {"meterbridge.protocols", "meterbridge.web", "meterbridge.cli"},
    "sinks": {
        "meterbridge.drivers",
        "meterbridge.protocols",
        "meterbridge.gateway",
        "meterbridge.web",
        "meterbridge.cli",
        "meterbridge.simulator",
    },
    "web": {"meterbridge.drivers", "meterbridge.protocols", "meterbridge.simulator", "meterbridge.cli"},
    "commissioning": {"meterbridge.cli"},
}
BASE_ONLY = {"obis.py", "readings.py", "errors.py"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def violates(module: str, banned: set[str]) -> bool:
    return any(module == b or module.startswith(b + ".") for b in banned)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer: str) -> None:
    problems = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for line, module in imported_modules(path):
            if violates(module, FORBIDDEN[layer]):
                problems.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert not problems, "layer rule broken:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", sorted(BASE_ONLY))
def test_base_modules_import_only_stdlib_and_each_other(name: str) -> None:
    for line, module in imported_modules(SRC / name):
        if module.startswith("meterbridge"):
            assert module in {"meterbridge.obis", "meterbridge.errors", "meterbridge.readings"}, (
                f"{name}:{line} imports {module}"
            )


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import socket\nfrom asyncio import sleep\nimport time as t\n")
    mods = [m for _, m in imported_modules(bad)]
    assert all(violates(m, FORBIDDEN["protocols"]) for m in mods)
