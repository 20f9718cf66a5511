"""A third-party M-Bus master (pyMeterBus, over pyserial's socket://) uses the simulator as a gateway."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterbridge.protocols.mbus import VariableDataResponse, decode_telegram
from meterbridge.simulator.mbus import MBusSimulator

meterbus = pytest.importorskip("meterbus", reason="pyMeterBus (bench extra) is not installed")
serial = pytest.importorskip("serial")


def test_pymeterbus_ping_and_read(bus: tuple[MBusSimulator, int]) -> None:
    sim, port = bus
    with serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=1.0) as ser:
        meterbus.send_ping_frame(ser, 1)
        ack = meterbus.load(meterbus.recv_frame(ser, 1))
        assert isinstance(ack, meterbus.TelegramACK)
        meterbus.send_ping_frame(ser, 7)  # nobody there
        assert meterbus.recv_frame(ser, 1) is None
        meterbus.send_request_frame(ser, 1)
        raw = meterbus.recv_frame(ser, meterbus.FRAME_DATA_LENGTH)
        telegram = meterbus.load(raw)
    ours = decode_telegram(bytes(raw))
    assert isinstance(ours, VariableDataResponse)
    assert ours.identification == sim.slaves[0].secondary.identification
    assert telegram.body.bodyHeader.id_nr_field.parts[::-1] == list(bytes.fromhex(ours.identification))
    # both decoders read the same values from the simulator's telegram
    theirs = [record.parsed_value for record in telegram.records]
    energy = ours.records[1]
    assert energy.quantity == "energy" and Decimal(theirs[1]) == Decimal(energy.value)  # type: ignore[arg-type]
