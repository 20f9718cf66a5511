"""Running the whole checklist against one installation and writing the report."""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from meterbridge.commissioning import items
from meterbridge.commissioning.model import CheckResult, Installation, Report
from meterbridge.commissioning.report import write_report
from meterbridge.sinks.store import open_store

__all__ = ["ITEMS", "run_checklist"]

ITEMS: Final[dict[str, Callable[[items.Context], Awaitable[CheckResult]]]] = {
    "communication": items.communication,
    "measurements": items.measurements,
    "precision": items.precision,
    "stability": items.stability,
    "robustness": items.robustness,
    "backup": items.backup,
    "monitoring": items.monitoring,
    "documentation": items.documentation,
}


async def run_checklist(
    installation: Installation,
    reports_dir: Path,
    *,
    reference: list[dict[str, Any]] | None = None,
    soak_s: float = 3600.0,
    disturbance_s: float = 300.0,
    notes: str = "",
    only: list[str] | None = None,
) -> tuple[Report, Path, Path]:
    """Run the items (all, or ``only`` those named) in the guide's order; write HTML and JSON reports."""
    unknown = [name for name in only or [] if name not in ITEMS]
    if unknown:
        raise ValueError(f"unknown check item(s) {', '.join(unknown)}; known: {', '.join(ITEMS)}")
    reports_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    scratch = tempfile.TemporaryDirectory(prefix="meterbridge-check-")
    # what the items read goes to a store of its own (a file, so the soak does not grow this process)
    store_path = Path(scratch.name) / "check.sqlite"
    store = open_store(str(store_path))
    try:
        discover = getattr(installation, "discover", None)
        if discover is not None:  # a bus that scans: the meters it finds are checked too
            await discover()
        for meter in installation.meters():
            store.upsert_meter(meter)
        ctx = items.Context(
            installation,
            store,
            reports_dir,
            Path(scratch.name),
            f"sqlite:///{store_path}",
            reference=reference,
            soak_s=soak_s,
            disturbance_s=disturbance_s,
            notes=notes,
        )
        results = [await fn(ctx) for name, fn in ITEMS.items() if not only or name in only]
    finally:
        store.close()
        scratch.cleanup()
        aclose = getattr(installation, "aclose", None)
        if aclose is not None:
            await aclose()
    report = Report(
        started,
        datetime.now(UTC),
        installation.name,
        tuple(results),
        {
            "soak_s": soak_s,
            "disturbance_s": disturbance_s,
            "reference": bool(reference),
            "only": only or "all",
        },
    )
    html, json_path = write_report(report, reports_dir)
    return report, html, json_path
