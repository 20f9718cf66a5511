"""Mode E against the virtual E450 (``meterbridge.simulator``) on a real PTY: which DLMS client reads, and what a refused association leaves behind.

The public client (16) reads without a password; with a password the reader associates as
the Landis+Gyr reading client (32) with LLS. A refused association must still end the HDLC
link (DISC), so that the meter goes back to IEC 62056-21 and the next sign-on is answered.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meterbridge.drivers.dlms_client import AssociationRefused
from meterbridge.drivers.optical import PUBLIC_CLIENT, READING_CLIENT, read_mode_e
from meterbridge.obis import ObisCode
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.transports import RealClock

ENERGY = ObisCode.parse("1-0:1.8.0")
VOLTAGE = ObisCode.parse("1-0:32.7.0")


def simulator(monkeypatch: pytest.MonkeyPatch, clients: list[int]) -> E450Simulator:
    """A simulated E450 (LLS password ``secret12``) that records the client SAP of each association."""
    sim = E450Simulator(
        clock=RealClock(),
        seed=5,
        start=datetime.now(UTC) - timedelta(hours=1),
        reaction_time=0.05,
        dlms_password=b"secret12",
    )
    associate = sim.new_association

    def recording(client_sap: int):  # type: ignore[no-untyped-def]
        clients.append(client_sap)
        return associate(client_sap)

    monkeypatch.setattr(sim, "new_association", recording)
    return sim


async def test_public_client_without_password(monkeypatch: pytest.MonkeyPatch, optical_port: Any) -> None:
    clients: list[int] = []
    async with optical_port(simulator(monkeypatch, clients)) as reader:
        readings = await read_mode_e(reader, [str(ENERGY)])
    assert [r.key for r in readings] == [ENERGY]
    assert clients == [PUBLIC_CLIENT] == [16]


async def test_password_reads_as_the_reading_client(
    monkeypatch: pytest.MonkeyPatch, optical_port: Any
) -> None:
    clients: list[int] = []
    async with optical_port(simulator(monkeypatch, clients)) as reader:
        readings = await read_mode_e(reader, [str(ENERGY), str(VOLTAGE)], password="secret12")
    assert [(r.key, r.unit) for r in readings] == [(ENERGY, "Wh"), (VOLTAGE, "V")]
    assert clients == [READING_CLIENT] == [32]


async def test_explicit_client_wins(monkeypatch: pytest.MonkeyPatch, optical_port: Any) -> None:
    clients: list[int] = []
    async with optical_port(simulator(monkeypatch, clients)) as reader:
        await read_mode_e(reader, [str(ENERGY)], password="secret12", client=1)
    assert clients == [1]


async def test_refused_association_ends_the_link(monkeypatch: pytest.MonkeyPatch, optical_port: Any) -> None:
    """After a wrong password the meter is back in IEC 62056-21: the next reader signs on at once."""
    clients: list[int] = []
    async with optical_port(simulator(monkeypatch, clients)) as reader:
        with pytest.raises(AssociationRefused, match="diagnostic") as refused:
            await read_mode_e(reader, [str(ENERGY)], password="wrong-pw")
        assert "wrong-pw" not in str(refused.value)
        readings = await read_mode_e(reader, [str(ENERGY)], password="secret12")
        assert [r.key for r in readings] == [ENERGY]
        readings = await read_mode_e(reader, [str(ENERGY)])  # and the public client after it
        assert [r.key for r in readings] == [ENERGY]
    assert clients == [32, 32, 16]
