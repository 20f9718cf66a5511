"""Shared helpers of the E450 simulator tests: drive the codecs' client roles against the simulator."""

from __future__ import annotations

from meterbridge.protocols.dlms.association import BlockReceived, DlmsClient
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.hdlc import Connected, DataReceived, HdlcConnection
from meterbridge.protocols.iec62056_21 import Iec62056Client
from meterbridge.simulator.e450 import iec_line
from meterbridge.transports import Transport


async def hdlc_next(link: HdlcConnection, port: Transport, timeout: float = 5.0) -> object:
    """Send what the link has queued (acknowledgements, next segments), read until it yields an event."""
    while True:
        event = link.next_event()
        out = link.data_to_send()
        if out:
            await port.write(out)
        if event is not NEED_DATA:
            return event
        link.receive_data(await port.read(4096, timeout))


async def hdlc_connect(link: HdlcConnection, port: Transport) -> None:
    link.connect()
    event = await hdlc_next(link, port)
    assert isinstance(event, Connected), event


async def dlms_request(client: DlmsClient, link: HdlcConnection, port: Transport, apdu: bytes) -> object:
    """One confirmed request; follows a long GET block by block."""
    client.outbox.clear()
    link.send_data(apdu)
    while True:
        event = await hdlc_next(link, port)
        assert isinstance(event, DataReceived), event
        result = client.receive(event.data)
        if isinstance(result, BlockReceived):
            link.send_data(client.outbox.popleft())
            continue
        return result


async def iec_next(client: Iec62056Client, port: Transport, timeout: float = 5.0) -> object:
    """The client's next event, reading as needed and switching the port's line when told."""
    while True:
        event = client.next_event()
        if event is NEED_DATA:
            client.receive_data(await port.read(4096, timeout))
            continue
        line = getattr(event, "line", None)
        if line is not None:
            await port.set_line(iec_line(line))
        return event
