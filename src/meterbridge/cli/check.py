"""``meterbridge check``: the commissioning checklist against the configured (or simulated) meters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["check"]


def _reference(path: Path) -> list[dict[str, object]]:
    import csv
    import json

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise typer.BadParameter(
                f"{path}: expected a JSON list of {{meter_id, key, value[, class][, unit]}}"
            )
        return data
    rows = list(csv.DictReader(text.splitlines()))
    for i, row in enumerate(rows, start=2):
        if not {"meter_id", "key", "value"} <= set(row):
            raise typer.BadParameter(f"{path}:{i}: expected columns meter_id,key,value[,class]")
    return [dict(r) for r in rows]


@app.command()
def check(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Gateway configuration (YAML) whose meters and buses are checked."
        ),
    ] = None,
    simulate: Annotated[
        int,
        typer.Option(
            "--simulate",
            min=0,
            help="Check this many simulated E450 meters instead of --config (installation time runs ahead during the soak).",
        ),
    ] = 0,
    via: Annotated[
        str,
        typer.Option(
            "--via",
            help="With --simulate: 'optical' reads virtual E450s through the optical driver (IEC 62056-21 on "
            "in-memory lines; faults: silent, garbled, slow); 'model' reads the register model directly "
            "(faults: silent, flaky, slow, scaler, drift, counter_glitch, no_power).",
        ),
    ] = "optical",
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            "--faults",
            help="With --simulate: METER:FAULT injected from the start, e.g. e450-optical-2:silent or "
            "sim-e450-2:drift (see --via for the faults). Also spelled --faults; repeatable.",
        ),
    ] = None,
    reports: Annotated[
        Path,
        typer.Option("--reports", help="Directory for the HTML and JSON reports (the dashboard lists it)."),
    ] = Path("var/reports"),
    reference: Annotated[
        Path | None,
        typer.Option(
            "--reference",
            help="Reference values (CSV or JSON: meter_id,key,value[,class][,unit]; class A, B or C, default B) for "
            "the precision item. With "
            "--simulate and no file, the simulator's exact energy integrals are the reference.",
        ),
    ] = None,
    soak: Annotated[
        float, typer.Option("--soak", min=0, help="Seconds of installation time for the stability soak.")
    ] = 3600.0,
    disturbance: Annotated[
        float,
        typer.Option(
            "--disturbance", min=0, help="Seconds each meter is silenced in the robustness item (simulator)."
        ),
    ] = 300.0,
    notes: Annotated[
        Path | None, typer.Option("--notes", help="Text file of wiring notes for the documentation item.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this item (repeatable): communication, measurements, precision, stability, "
            "robustness, backup, monitoring, documentation.",
        ),
    ] = None,
) -> None:
    """Run the commissioning checklist and write an HTML and a JSON report; exit 1 when an item fails."""
    import asyncio

    from meterbridge.commissioning import SimulatedInstallation, run_checklist
    from meterbridge.commissioning.model import Installation

    if (config is None) == (simulate == 0):
        raise typer.BadParameter("give either --config FILE or --simulate N")
    installation: Installation
    ref = _reference(reference) if reference else None
    if simulate:
        faults: dict[str, set[str]] = {}
        for text in fault or []:
            meter_id, sep, name = text.rpartition(":")
            if not sep:
                raise typer.BadParameter(f"--fault {text!r}: expected METER:FAULT")
            faults.setdefault(meter_id, set()).add(name)
        if via not in ("optical", "model"):
            raise typer.BadParameter(f"--via {via!r}: 'optical' or 'model'")
        try:
            if via == "optical":
                from meterbridge.commissioning.optical_sim import OpticalSimulatedInstallation

                optical = OpticalSimulatedInstallation(simulate, faults=faults)
                installation, sim_reference = optical, optical.reference
            else:
                model = SimulatedInstallation(simulate, faults=faults)
                installation, sim_reference = model, model.reference
        except (KeyError, ValueError) as exc:
            raise typer.BadParameter(str(exc.args[0])) from None
        if ref is None:
            ref = sim_reference()
    else:
        if fault:
            raise typer.BadParameter("--fault needs --simulate")
        from meterbridge.commissioning.configured import ConfiguredInstallation
        from meterbridge.errors import ConfigError
        from meterbridge.gateway.config import load_config

        assert config is not None
        try:
            installation = ConfiguredInstallation(load_config(config), config)
        except ConfigError as exc:
            typer.echo(f"meterbridge: refusing to start: {exc}", err=True)
            raise typer.Exit(2) from None
    try:
        report, html, json_path = asyncio.run(
            run_checklist(
                installation,
                reports,
                reference=ref,
                soak_s=soak,
                disturbance_s=disturbance,
                notes=notes.read_text(encoding="utf-8") if notes else "",
                only=only or None,
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    for result in report.results:
        typer.echo(f"{result.status.upper():5} {result.title}: {result.summary}")
    typer.echo(f"report: {html}")
    typer.echo(f"        {json_path}")
    raise typer.Exit(1 if report.status == "fail" else 0)
