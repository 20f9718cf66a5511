"""HDLC for DLMS/COSEM (IEC 62056-46): frames, a streaming decoder, the link state machine.

Public API (everything below is importable from ``meterbridge.protocols.hdlc``)::

    # one frame, both flags included
    frame = HdlcFrame.decode(bytes.fromhex("7EA0382102233034E7E6E700...B86A7E"))
    frame.kind              # FrameKind.I  (I, RR, RNR, SNRM, DISC, UA, DM, FRMR, UI)
    frame.destination       # HdlcAddress(upper=16, lower=None, size=1)  -> client 16
    frame.source            # HdlcAddress(upper=1, lower=17, size=2)     -> server 1/17
    frame.control           # 0x30
    frame.send_sequence, frame.receive_sequence, frame.poll_final, frame.segmented
    frame.information       # the whole information field (bytes, LLC included)
    frame.llc               # b"\\xE6\\xE7\\x00", b"\\xE6\\xE6\\x00" or None
    frame.payload           # information without the LLC header (if it has one)
    frame.encode()          # back to the wire

    # a byte stream (serial line, TCP, a capture file): noise, partial frames,
    # back-to-back frames with a shared flag
    stream = HdlcStream()
    stream.receive_data(chunk)          # b"" = line closed
    while (frame := stream.next_event()) is not NEED_DATA:
        ...                             # a bad frame raises FramingError / ChecksumError /
                                        # UnsupportedError (with the stream offset) after being
                                        # dropped: catch, report, call next_event() again

    # the link, client or server role, in memory or over any transport
    link = HdlcConnection(Role.CLIENT, client_address=HdlcAddress.client(16),
                          server_address=HdlcAddress.server(1, 17))
    link.connect(); wire = link.data_to_send()
    link.receive_data(reply); event = link.next_event()    # Connected(parameters)
    link.send_data(apdu)       # LLC added, segmented to the negotiated size
    ... DataReceived(apdu) ... link.disconnect() ... Disconnected(FrameKind.UA)

E450 customer-interface pushes are UI frames (control 0x13) from server address 1
(one byte, ``03``) to the two-byte broadcast address ``CE FF`` (upper 103, lower
127). Only the first frame of a push carries the LLC ``E6 E7 00``; each frame holds
one General Block Transfer block, which the DLMS layer reassembles: hand it
``frame.payload`` of every frame.

Checks: HCS (over format, addresses, control; only present with an information
field) and FCS are CRC-16/X-25 (``fcs16``; ``fcs16_table`` is the plain 256-entry table form).
"""

from __future__ import annotations

from meterbridge.protocols.events import NEED_DATA, NeedData
from meterbridge.protocols.hdlc.connection import (
    TRANSITIONS,
    Connected,
    DataReceived,
    Disconnected,
    FrameRejected,
    HdlcConnection,
    HdlcEvent,
    LinkState,
    Role,
    UnnumberedReceived,
)
from meterbridge.protocols.hdlc.frames import (
    BROADCAST_SERVER,
    FLAG,
    LLC_REQUEST,
    LLC_RESPONSE,
    MAX_FRAME_LENGTH,
    PUBLIC_CLIENT,
    FrameKind,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
    fcs16,
    fcs16_table,
)
from meterbridge.protocols.hdlc.stream import DEFAULT_MAX_BUFFER, HdlcStream

__all__ = [
    "BROADCAST_SERVER",
    "DEFAULT_MAX_BUFFER",
    "FLAG",
    "LLC_REQUEST",
    "LLC_RESPONSE",
    "MAX_FRAME_LENGTH",
    "NEED_DATA",
    "PUBLIC_CLIENT",
    "TRANSITIONS",
    "Connected",
    "DataReceived",
    "Disconnected",
    "FrameKind",
    "FrameRejected",
    "HdlcAddress",
    "HdlcConnection",
    "HdlcEvent",
    "HdlcFrame",
    "HdlcParameters",
    "HdlcStream",
    "LinkState",
    "NeedData",
    "Role",
    "UnnumberedReceived",
    "fcs16",
    "fcs16_table",
]
