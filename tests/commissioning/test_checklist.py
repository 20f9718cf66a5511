"""The commissioning checklist on a simulated installation: healthy, every item passes; with faults
injected, the item that must find each fault fails on the right meter and the others do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import meterbridge.cli.check  # noqa: F401  (registers the command)
from meterbridge.cli.app import app
from meterbridge.commissioning import FAULTS, ITEMS, SimulatedInstallation, run_checklist
from meterbridge.commissioning.configured import ConfiguredInstallation
from meterbridge.gateway.config import parse_config
from meterbridge.web import create_app


def by_item(report: Any) -> dict[str, Any]:
    return {r.item: r for r in report.results}


def failed_subjects(result: Any) -> set[str]:
    return {f.subject for f in result.findings if f.status == "fail"}


async def test_healthy_installation_passes_every_item(tmp_path: Path) -> None:
    sim = SimulatedInstallation(3)
    report, html, json_path = await run_checklist(
        sim, tmp_path / "reports", reference=sim.reference(), soak_s=2 * 3600, notes="RJ12 to the CII, 2 m"
    )
    items = by_item(report)
    assert list(items) == [
        "communication",
        "measurements",
        "precision",
        "stability",
        "robustness",
        "backup",
        "monitoring",
        "documentation",
    ]
    assert {name: r.status for name, r in items.items()} == dict.fromkeys(items, "pass"), [
        (r.item, r.summary) for r in report.results if r.status != "pass"
    ]
    assert report.status == "pass"
    # figures that the report must carry
    comm = items["communication"].findings[0].figures
    assert comm["answered"] == comm["asked"] == 5 and comm["rtt_median_ms"] is not None
    precision = items["precision"].findings
    assert len(precision) == 9 and all(abs(f.figures["error_pct"]) < 0.01 for f in precision)
    soak = [f for f in items["stability"].findings if f.subject.startswith("sim-")]
    assert all(f.figures["availability"] == 1.0 and f.figures["polls"] == 120 for f in soak)
    recovery = [f.figures["recovery_s"] for f in items["robustness"].findings]
    assert recovery == [0.0, 0.0, 0.0]
    docs = {f.subject: f.figures for f in items["documentation"].findings}
    assert docs["sim-e450-1"]["serial"] and docs["sim-e450-1"]["firmware"] == "E450 B31 v1.6"
    # both report files, and the dashboard lists and opens them
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert data["status"] == "pass" and len(data["results"]) == 8
    assert '<span id="verdict" class="badge pass">pass</span>' in html.read_text(encoding="utf-8")
    backups = list((tmp_path / "reports").glob("backup-*.json"))
    assert len(backups) == 1
    assert len(json.loads(backups[0].read_text(encoding="utf-8"))["inventory"]) == 3
    assert [f.subject for f in items["backup"].findings] == ["meterbridge backup", "meterbridge restore"]
    assert "3 of 3 meters restored; configuration identical" in items["backup"].findings[1].detail
    web = create_app(SimulatedStore.empty(tmp_path), reports_dir=tmp_path / "reports")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://t") as client:
        listed = {r["name"] for r in (await client.get("/api/reports")).json()["reports"]}
        assert {html.name, json_path.name} <= listed
        assert (await client.get(f"/reports/{html.name}")).status_code == 200


class SimulatedStore:
    @staticmethod
    def empty(tmp_path: Path) -> Any:
        from meterbridge.sinks.store import open_store

        return open_store(str(tmp_path / "dash.sqlite"))


@pytest.mark.parametrize(
    ("fault", "item", "finding"),
    [
        ("silent", "communication", "no answer"),
        ("slow", "communication", "too late"),
        ("scaler", "measurements", "outside the plausible"),
        ("no_power", "measurements", "expected registers missing"),
        ("drift", "precision", "error +2.000 %"),
        ("counter_glitch", "stability", "counter went backwards"),
        ("flaky", "stability", "availability"),
    ],
)
async def test_each_injected_fault_is_found(tmp_path: Path, fault: str, item: str, finding: str) -> None:
    sim = SimulatedInstallation(3, faults={"sim-e450-2": {fault}})
    # every item but backup (it does not look at the meters; the healthy run covers it)
    items_run = [name for name in ITEMS if name != "backup"]
    report, _, _ = await run_checklist(sim, tmp_path, reference=sim.reference(), soak_s=5400, only=items_run)
    items = by_item(report)
    assert report.status == "fail"
    result = items[item]
    assert result.status == "fail"
    bad = [f for f in result.findings if f.status == "fail"]
    assert bad and all(f.subject.startswith("sim-e450-2") for f in bad), [(f.subject, f.detail) for f in bad]
    assert any(finding in f.detail for f in bad), [f.detail for f in bad]
    # the healthy meters pass everywhere
    for r in report.results:
        assert not any(
            f.subject.startswith(("sim-e450-1", "sim-e450-3")) for f in r.findings if f.status == "fail"
        )


async def test_a_silent_meter_is_reported_by_monitoring_and_skipped_by_robustness(tmp_path: Path) -> None:
    sim = SimulatedInstallation(2, faults={"sim-e450-1": {"silent"}})
    report, _, _ = await run_checklist(
        sim, tmp_path, soak_s=600, only=["communication", "robustness", "monitoring"]
    )
    items = by_item(report)
    assert [f.status for f in items["robustness"].findings] == ["skip", "pass"]
    assert failed_subjects(items["monitoring"]) == {"/metrics sim-e450-1"}


async def test_robustness_measures_recovery(tmp_path: Path) -> None:
    sim = SimulatedInstallation(1)
    report, _, _ = await run_checklist(sim, tmp_path, disturbance_s=600, only=["robustness"])
    (finding,) = report.results[0].findings
    assert finding.figures["failed_reads_during"] == 10  # one read per 60 s interval while silenced
    assert finding.figures["recovery_s"] == 0.0


async def test_precision_without_reference_is_skipped_and_unknown_class_fails(tmp_path: Path) -> None:
    sim = SimulatedInstallation(1)
    report, _, _ = await run_checklist(sim, tmp_path, only=["precision"])
    assert report.results[0].status == "skip"
    ref = [{"meter_id": "sim-e450-1", "key": "1-0:1.8.0.255", "value": 1, "class": "Z"}]
    report, _, _ = await run_checklist(sim, tmp_path, reference=ref, only=["precision"])
    assert "class 'Z' unknown" in report.results[0].findings[0].detail
    with pytest.raises(ValueError, match="unknown check item"):
        await run_checklist(sim, tmp_path, only=["vibes"])


def test_the_simulated_configuration_is_a_valid_gateway_configuration(tmp_path: Path) -> None:
    config = parse_config(SimulatedInstallation(2).config_file(tmp_path).read_text(encoding="utf-8"))
    assert [m.id for m in config.meters] == ["sim-e450-1", "sim-e450-2"]


def test_fault_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not one of"):
        SimulatedInstallation(1, faults={"sim-e450-1": {"gremlins"}})
    with pytest.raises(KeyError, match="no simulated meter"):
        SimulatedInstallation(1, faults={"sim-e450-9": {"silent"}})
    assert "counter_glitch" in FAULTS


async def test_configured_installation_reports_what_it_cannot_read(tmp_path: Path) -> None:
    config = parse_config(
        "meters:\n  - id: e450\n    protocol: optical\n    transport: serial:///dev/ttyUSB7\n    timeout: 1\n"
    )
    installation = ConfiguredInstallation(config)
    report, _, _ = await run_checklist(
        installation, tmp_path, only=["communication", "robustness", "documentation"]
    )
    items = by_item(report)
    (comm,) = items["communication"].findings
    assert comm.status == "fail"
    # the driver is missing (the gateway's message names the protocol) or the port does not exist
    assert "optical" in comm.detail or "ttyUSB7" in comm.detail, comm.detail
    assert items["robustness"].status == "skip"
    docs = {f.subject: f for f in items["documentation"].findings}
    assert docs["e450"].figures["param transport"] == "serial:///dev/ttyUSB7"


def test_cli_exit_codes_and_output(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(
        app,
        ["check", "--simulate", "2", "--via", "model", "--soak", "1800", "--reports", str(tmp_path / "a")],
    )
    assert ok.exit_code == 0, ok.output
    assert "PASS  Communication" in ok.output and "report:" in ok.output
    bad = runner.invoke(
        app,
        [
            "check",
            "--simulate",
            "2",
            "--via",
            "model",
            "--soak",
            "1800",
            "--reports",
            str(tmp_path / "b"),
            "--fault",
            "sim-e450-1:drift",
        ],
    )
    assert bad.exit_code == 1
    assert "FAIL  Precision" in bad.output
    ref = tmp_path / "ref.csv"
    ref.write_text("meter_id,key,value,class\ne450-optical-1,1-0:1.8.0.255,1,B\n", encoding="utf-8")
    far = runner.invoke(
        app,
        [
            "check",
            "--simulate",
            "1",
            "--reports",
            str(tmp_path / "c"),
            "--reference",
            str(ref),
            "--only",
            "precision",
        ],
    )
    assert far.exit_code == 1 and "FAIL  Precision" in far.output
    for args in (
        ["check"],
        ["check", "--fault", "x:silent", "--config", str(ref)],
        ["check", "--simulate", "1", "--fault", "nocolon"],
        ["check", "--simulate", "1", "--via", "carrier-pigeon"],
        ["check", "--simulate", "1", "--fault", "e450-optical-1:drift"],
    ):
        assert runner.invoke(app, args).exit_code == 2, args


async def test_configured_optical_meter_on_a_pty(tmp_path: Path) -> None:
    """The configured path end to end: a gateway configuration, the gateway's optical source, a real PTY and
    the E450 simulator on its other side."""
    import asyncio

    from meterbridge.simulator.e450 import E450Simulator
    from meterbridge.transports import IEC_SIGN_ON, RealClock, open_pty_pair

    master, path = await open_pty_pair(line=IEC_SIGN_ON)
    sim = E450Simulator(clock=RealClock(), seed=2, reaction_time=0.02)
    task = asyncio.create_task(sim.serve_optical(master))
    try:
        config = parse_config(
            f"meters:\n  - id: e450\n    protocol: optical\n    transport: serial://{path}\n"
            "    interval: 1\n    timeout: 20\n"
        )
        report, _, _ = await run_checklist(
            ConfiguredInstallation(config),
            tmp_path,
            soak_s=2,
            only=["communication", "measurements", "stability", "monitoring", "documentation"],
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await master.close()
    items = by_item(report)
    assert report.status == "pass", [(r.item, r.summary) for r in report.results]
    comm = items["communication"].findings[0]
    assert comm.figures["answered"] == 5 and comm.figures["rtt_median_ms"] > 0
    assert "read, all plausible" in items["measurements"].findings[0].detail
    assert {f.subject for f in items["monitoring"].findings} == {
        "/healthz",
        "/metrics e450",
        "/metrics outbox",
    }


async def bus_over_tcp(meters: int, **options: Any) -> Any:
    """A simulated M-Bus of ``meters`` slaves behind a transparent M-Bus/TCP gateway (one client at a
    time); ``.port``, ``await .close()``."""
    import asyncio

    from meterbridge.simulator.mbus import build_bus
    from meterbridge.transports.sockets import serve_tcp

    bus = build_bus(meters, **options)
    lock = asyncio.Lock()

    async def handler(transport: Any) -> None:
        async with lock:
            await bus.serve(transport)

    return await serve_tcp(handler, "127.0.0.1", 0)


async def test_configured_mbus_bus_meters(tmp_path: Path) -> None:
    """Meters of a configured wired M-Bus, read through the gateway's bus source from the M-Bus simulator
    (a transparent M-Bus/TCP gateway): each answers with all its records; one silent meter fails (when
    its turn in the bus round passed, not after a timeout). One retry: the simulator streams its replies at
    the line's pace in this same event loop, and on a loaded machine a stall longer than the master's
    inter-character gap cuts a reply (the retry repeats the telegram in the same turn)."""
    server = await bus_over_tcp(3, seed=1, silent=[2])
    config = parse_config(
        f"buses:\n  - id: cellar\n    transport: tcp://127.0.0.1:{server.port}\n    extra_timeout: 0.1\n"
        "    retries: 1\n    scan: {mode: none}\n    meters:\n"
        "      - {address: 1, id: heat-1}\n      - {address: 2, id: water-2}\n      - {address: 3, id: gas-3}\n"
    )
    installation = ConfiguredInstallation(config, bus_interval=0.3)
    try:
        report, _, _ = await run_checklist(
            installation, tmp_path, only=["communication", "measurements", "documentation"]
        )
    finally:
        await installation.aclose()
        await server.close()
    items = by_item(report)
    comm = {f.subject: f for f in items["communication"].findings}
    assert comm["heat-1"].status == comm["water-2"].status == "pass"
    assert comm["gas-3"].status == "fail"
    counts = {f.subject: f.detail for f in items["measurements"].findings if f.status == "pass"}
    assert all(int(d.split("; ")[1].split()[0]) > 5 for d in counts.values()), counts  # whole telegrams
    docs = {f.subject: f for f in items["documentation"].findings}
    assert docs["heat-1"].status == "pass" and docs["heat-1"].figures["serial"]


async def test_configured_bus_check_covers_the_meters_its_scan_finds(tmp_path: Path) -> None:
    """The installer lists one meter of three and lets the bus scan: the check reads all three, under the
    ids the gateway gives the two it found, and documents them."""
    server = await bus_over_tcp(3, seed=4)
    config = parse_config(
        f"buses:\n  - id: cellar\n    transport: tcp://127.0.0.1:{server.port}\n    retries: 1\n"
        '    scan: {mode: primary, addresses: "0-5"}\n    meters:\n      - {address: 1, id: heat-1}\n'
    )
    installation = ConfiguredInstallation(config, bus_interval=0.3)
    try:
        report, _, _ = await run_checklist(installation, tmp_path, only=["communication", "documentation"])
    finally:
        await installation.aclose()
        await server.close()
    items = by_item(report)
    comm = {f.subject: f.status for f in items["communication"].findings if f.subject != "cellar"}
    assert len(comm) == 3 and "heat-1" in comm, comm
    assert set(comm.values()) == {"pass"}, items["communication"].findings
    found = sorted(set(comm) - {"heat-1"})
    params = installation.parameters()
    assert [params[m]["found_by_scan"] for m in found] == [True, True] and not params["heat-1"][
        "found_by_scan"
    ]
    docs = {f.subject: f for f in items["documentation"].findings}
    assert all(docs[m].figures["serial"] for m in found)
