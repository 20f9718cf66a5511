"""meterbridge.commissioning: the guide's commissioning checklist (``meterbridge check``).

Each item (communication, measurements, precision, stability, robustness, backup, monitoring,
documentation) is a function returning a ``CheckResult``; ``run_checklist`` runs them against an
``Installation`` and writes an HTML and a JSON report that the dashboard lists.
"""

from meterbridge.commissioning.model import CheckResult, Finding, Installation, PollOutcome, Report
from meterbridge.commissioning.runner import ITEMS, run_checklist
from meterbridge.commissioning.simulated import FAULTS, SimulatedInstallation

__all__ = [
    "FAULTS",
    "ITEMS",
    "CheckResult",
    "Finding",
    "Installation",
    "PollOutcome",
    "Report",
    "SimulatedInstallation",
    "run_checklist",
]
