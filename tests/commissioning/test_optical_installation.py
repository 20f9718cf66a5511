"""The checklist on virtual E450 meters read through the optical driver (IEC 62056-21 on in-memory lines):
real sign-on, baud switch, BCC and retries; faults on the line are found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meterbridge.commissioning import run_checklist
from meterbridge.commissioning.optical_sim import EXPECTED_READOUT, OpticalSimulatedInstallation

FAST = ["communication", "measurements", "precision", "stability", "monitoring"]


def by_item(report: Any) -> dict[str, Any]:
    return {r.item: r for r in report.results}


async def test_healthy_optical_installation_passes(tmp_path: Path) -> None:
    inst = OpticalSimulatedInstallation(2)
    report, _, _ = await run_checklist(inst, tmp_path, reference=inst.reference(), soak_s=600, only=FAST)
    items = by_item(report)
    assert report.status == "pass", [(r.item, r.summary) for r in report.results]
    comm = items["communication"].findings[0].figures
    assert comm["answered"] == 5 and comm["retries"] == 0
    # the readout carries kWh with three decimals: the reading is the integral floored to 1 Wh
    errors = [abs(f.figures["error_pct"]) for f in items["precision"].findings]
    assert len(errors) == 6 and max(errors) < 0.001
    soak = [f for f in items["stability"].findings if f.subject.startswith("e450-")]
    assert [f.figures["polls"] for f in soak] == [10, 10]
    assert all(f.figures["availability"] == 1.0 for f in soak)
    assert inst.expected("e450-optical-1") == list(EXPECTED_READOUT)


async def test_garbled_line_shows_as_retries(tmp_path: Path) -> None:
    inst = OpticalSimulatedInstallation(2, faults={"e450-optical-2": {"garbled"}})
    report, _, _ = await run_checklist(inst, tmp_path, soak_s=600, only=["communication"])
    findings = {f.subject: f for f in report.results[0].findings}
    assert findings["e450-optical-1"].status == "pass"
    bad = findings["e450-optical-2"]
    assert bad.status == "fail" and bad.figures["retries"] >= 2, bad


async def test_silent_meter_fails_communication_and_recovers_in_robustness(tmp_path: Path) -> None:
    inst = OpticalSimulatedInstallation(2, faults={"e450-optical-1": {"silent"}})
    report, _, _ = await run_checklist(inst, tmp_path, disturbance_s=60, only=["communication", "robustness"])
    items = by_item(report)
    comm = {f.subject: f for f in items["communication"].findings}
    assert comm["e450-optical-1"].status == "fail" and "TransportTimeout" in comm["e450-optical-1"].detail
    assert comm["e450-optical-2"].status == "pass"
    rob = {f.subject: f for f in items["robustness"].findings}
    assert rob["e450-optical-1"].status == "skip"
    assert rob["e450-optical-2"].status == "pass"
    assert rob["e450-optical-2"].figures["failed_reads_during"] == 1
    assert rob["e450-optical-2"].figures["recovery_s"] == pytest.approx(0.0, abs=1.0)


def test_unknown_optical_fault_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        OpticalSimulatedInstallation(1, faults={"e450-optical-1": {"drift"}})
