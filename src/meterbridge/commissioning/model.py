"""The values of a commissioning run: what an installation answers, what each check item found.

A check item is a function that returns one ``CheckResult`` (``pass``, ``fail`` or ``skip``, a one-line
summary, and one ``Finding`` per meter or register with its own verdict and figures). An installation is
anything that implements ``Installation``: the configured meters read through the gateway's sources
(``meterbridge.commissioning.installations.GatewayInstallation``) or a simulated one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from meterbridge.readings import Reading
from meterbridge.sinks.store import MeterInfo

__all__ = [
    "CheckResult",
    "Finding",
    "Installation",
    "PollOutcome",
    "Report",
    "Status",
    "overall",
]

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """One read of one meter: its readings (empty when it did not answer), the round-trip time of the
    successful attempt (or of the last one), how many attempts were repeated, and the error if none worked."""

    meter_id: str
    at: datetime
    readings: tuple[Reading, ...]
    rtt_s: float
    retries: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.readings)


@dataclass(frozen=True, slots=True)
class Finding:
    """One verdict about one subject (a meter, a register, a port)."""

    subject: str
    status: Status
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check item found."""

    item: str
    title: str
    status: Status
    summary: str
    findings: tuple[Finding, ...] = ()

    @classmethod
    def from_findings(cls, item: str, title: str, findings: list[Finding], summary: str = "") -> CheckResult:
        failed = [f for f in findings if f.status == "fail"]
        if failed:
            status: Status = "fail"
        elif findings and all(f.status == "skip" for f in findings):
            status = "skip"
        else:
            status = "pass"
        if not summary:
            skipped = sum(1 for f in findings if f.status == "skip")
            if failed:
                summary = f"{len(failed)} of {len(findings)} failed: " + ", ".join(
                    f.subject for f in failed[:8]
                )
            else:
                summary = f"{len(findings) - skipped} passed" + (f", {skipped} skipped" if skipped else "")
        return cls(item, title, status, summary, tuple(findings))


@dataclass(frozen=True, slots=True)
class Report:
    """A whole commissioning run."""

    started: datetime
    finished: datetime
    installation: str
    results: tuple[CheckResult, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return overall(self.results)


def overall(results: tuple[CheckResult, ...] | list[CheckResult]) -> Status:
    if any(r.status == "fail" for r in results):
        return "fail"
    if results and all(r.status == "skip" for r in results):
        return "skip"
    return "pass"


class Installation(Protocol):
    """What the checklist needs from the meters it checks."""

    name: str
    #: True when faults can be injected (the simulator); the robustness item needs it.
    can_inject: bool

    def meters(self) -> list[MeterInfo]:
        """The configured meters (inventory: address, protocol, serial where known)."""
        ...

    def parameters(self) -> dict[str, dict[str, Any]]:
        """Per meter id: its configured parameters (interval, baud, timeout, ...) for the documentation."""
        ...

    def expected(self, meter_id: str) -> list[str]:
        """Register keys the meter is expected to deliver."""
        ...

    def now(self) -> datetime:
        """The installation's clock (accelerated on the simulator)."""
        ...

    async def read(self, meter_id: str) -> PollOutcome:
        """Read every register of one meter once."""
        ...

    async def wait(self, seconds: float) -> None:
        """Let ``seconds`` of installation time pass (virtual on the simulator)."""
        ...

    async def inject(self, meter_id: str, fault: str, active: bool) -> None:
        """Switch a fault on or off (only when ``can_inject``)."""
        ...

    def config_file(self, scratch: Path) -> Path:
        """The gateway configuration file of this installation (the simulator writes one into ``scratch``)."""
        ...
