"""``HdlcConnection``: the HDLC link state machine of IEC 62056-46 for both roles.

Sans-IO, in the shape of h2: feed received bytes with ``receive_data()``, collect
events with ``next_event()`` (until ``NEED_DATA``), and send what ``data_to_send()``
returns. Intentions are methods that queue frames:

========================  =====================================================
``connect()``             client: SNRM with our parameters (``81 80 ...``)
``send_data(apdu)``       I frames; the LLC header is added, the information
                          field is cut into segments of the negotiated size (the
                          S bit), at most ``window`` frames before an ack
``send_unnumbered(b)``    one UI frame (any state)
``poll()``                client: RR with P=1, asks the server to repeat what
                          it sent after a timeout (lost or corrupt frames)
``disconnect()``          client: DISC
========================  =====================================================

Events: ``Connected(parameters)`` (negotiated, from our side: ``max_info_tx`` is what
we may send), ``DataReceived(data)`` (a whole reassembled information field, LLC
stripped), ``UnnumberedReceived(frame)``, ``Disconnected(by)`` (the frame that
ended the link: UA, DM or DISC) and ``FrameRejected(information)`` (an FRMR).

The server answers SNRM with UA and the negotiated parameters, DISC with UA, and
anything but SNRM/DISC/UI with DM while it is not connected; both roles
acknowledge segments with RR, detect repeated I frames (and repeat their own
unacknowledged frames in reply), and go back to the first unacknowledged frame
when an RR with P/F says the peer did not get it.

Which frame is allowed in which state is the table ``TRANSITIONS`` below. A frame
the table does not allow, or a wrong N(R), raises ``ProtocolError`` and moves the
link to ``LinkState.ERROR`` (a client leaves it with ``connect()`` or
``disconnect()``; a server with the next SNRM or DISC). A bad frame reported by the
stream (``ChecksumError`` ...) is dropped and changes nothing: call
``next_event()`` again. Frames addressed to other stations are ignored and
counted in ``ignored``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

from meterbridge.errors import FramingError, LocalProtocolError, ProtocolError
from meterbridge.protocols.events import NEED_DATA, NeedData
from meterbridge.protocols.hdlc.frames import (
    LAYER,
    LLC_REQUEST,
    LLC_RESPONSE,
    FrameKind,
    HdlcAddress,
    HdlcFrame,
    HdlcParameters,
)
from meterbridge.protocols.hdlc.stream import DEFAULT_MAX_BUFFER, HdlcStream

__all__ = [
    "TRANSITIONS",
    "Connected",
    "DataReceived",
    "Disconnected",
    "FrameRejected",
    "HdlcConnection",
    "HdlcEvent",
    "LinkState",
    "Role",
    "UnnumberedReceived",
]


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class LinkState(enum.Enum):
    NDM = "NDM"  # normal disconnected mode
    CONNECTING = "connecting"  # client: SNRM sent, UA awaited
    CONNECTED = "connected"  # normal response mode
    DISCONNECTING = "disconnecting"  # client: DISC sent, UA or DM awaited
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Connected:
    parameters: HdlcParameters


@dataclass(frozen=True, slots=True)
class DataReceived:
    data: bytes


@dataclass(frozen=True, slots=True)
class UnnumberedReceived:
    frame: HdlcFrame


@dataclass(frozen=True, slots=True)
class Disconnected:
    by: FrameKind


@dataclass(frozen=True, slots=True)
class FrameRejected:
    information: bytes


HdlcEvent = Connected | DataReceived | UnnumberedReceived | Disconnected | FrameRejected


class _In(enum.Enum):
    SEND_SNRM = "send SNRM"
    SEND_DISC = "send DISC"
    SEND_I = "send I"
    SEND_UI = "send UI"
    POLL = "send RR"
    RECV_SNRM = "SNRM"
    RECV_DISC = "DISC"
    RECV_UA = "UA"
    RECV_DM = "DM"
    RECV_FRMR = "FRMR"
    RECV_I = "I"
    RECV_RR = "RR"
    RECV_RNR = "RNR"
    RECV_UI = "UI"


_RECEIVED: Final = {
    FrameKind.SNRM: _In.RECV_SNRM,
    FrameKind.DISC: _In.RECV_DISC,
    FrameKind.UA: _In.RECV_UA,
    FrameKind.DM: _In.RECV_DM,
    FrameKind.FRMR: _In.RECV_FRMR,
    FrameKind.I: _In.RECV_I,
    FrameKind.RR: _In.RECV_RR,
    FrameKind.RNR: _In.RECV_RNR,
    FrameKind.UI: _In.RECV_UI,
}

S = LinkState
# (role, state) -> {input: (handler name or None for our own sends, next state)}
TRANSITIONS: Final[dict[tuple[Role, LinkState], dict[_In, tuple[str | None, LinkState]]]] = {
    (Role.CLIENT, S.NDM): {
        _In.SEND_SNRM: (None, S.CONNECTING),
        _In.SEND_DISC: (None, S.DISCONNECTING),
        _In.SEND_UI: (None, S.NDM),
        _In.RECV_DM: ("_ignore", S.NDM),
        _In.RECV_UI: ("_on_ui", S.NDM),
    },
    (Role.CLIENT, S.CONNECTING): {
        _In.SEND_SNRM: (None, S.CONNECTING),
        _In.SEND_DISC: (None, S.DISCONNECTING),
        _In.SEND_UI: (None, S.CONNECTING),
        _In.RECV_UA: ("_on_ua_connect", S.CONNECTED),
        _In.RECV_DM: ("_on_dm", S.NDM),
        _In.RECV_FRMR: ("_on_frmr", S.NDM),
        _In.RECV_UI: ("_on_ui", S.CONNECTING),
    },
    (Role.CLIENT, S.CONNECTED): {
        _In.SEND_SNRM: (None, S.CONNECTING),
        _In.SEND_DISC: (None, S.DISCONNECTING),
        _In.SEND_I: (None, S.CONNECTED),
        _In.SEND_UI: (None, S.CONNECTED),
        _In.POLL: (None, S.CONNECTED),
        _In.RECV_I: ("_on_i", S.CONNECTED),
        _In.RECV_RR: ("_on_rr", S.CONNECTED),
        _In.RECV_RNR: ("_on_rnr", S.CONNECTED),
        _In.RECV_UA: ("_ignore", S.CONNECTED),  # a second UA after a repeated SNRM
        _In.RECV_DM: ("_on_dm", S.NDM),
        _In.RECV_FRMR: ("_on_frmr", S.CONNECTED),
        _In.RECV_UI: ("_on_ui", S.CONNECTED),
    },
    (Role.CLIENT, S.DISCONNECTING): {
        _In.SEND_DISC: (None, S.DISCONNECTING),
        _In.SEND_SNRM: (None, S.CONNECTING),
        _In.SEND_UI: (None, S.DISCONNECTING),
        _In.RECV_UA: ("_on_ua_disconnect", S.NDM),
        _In.RECV_DM: ("_on_dm", S.NDM),
        _In.RECV_I: ("_ignore", S.DISCONNECTING),  # late answers to what we sent before DISC
        _In.RECV_RR: ("_ignore", S.DISCONNECTING),
        _In.RECV_RNR: ("_ignore", S.DISCONNECTING),
        _In.RECV_FRMR: ("_ignore", S.DISCONNECTING),
        _In.RECV_UI: ("_on_ui", S.DISCONNECTING),
    },
    (Role.CLIENT, S.ERROR): {
        _In.SEND_SNRM: (None, S.CONNECTING),
        _In.SEND_DISC: (None, S.DISCONNECTING),
        _In.SEND_UI: (None, S.ERROR),
        **{i: ("_ignore", S.ERROR) for i in _RECEIVED.values() if i is not _In.RECV_UI},
        _In.RECV_UI: ("_on_ui", S.ERROR),
    },
    (Role.SERVER, S.NDM): {
        _In.SEND_UI: (None, S.NDM),
        _In.RECV_SNRM: ("_on_snrm", S.CONNECTED),
        _In.RECV_DISC: ("_reply_dm", S.NDM),
        _In.RECV_I: ("_reply_dm", S.NDM),
        _In.RECV_RR: ("_reply_dm", S.NDM),
        _In.RECV_RNR: ("_reply_dm", S.NDM),
        _In.RECV_UI: ("_on_ui", S.NDM),
    },
    (Role.SERVER, S.CONNECTED): {
        _In.SEND_I: (None, S.CONNECTED),
        _In.SEND_UI: (None, S.CONNECTED),
        _In.RECV_SNRM: ("_on_snrm", S.CONNECTED),
        _In.RECV_DISC: ("_on_disc", S.NDM),
        _In.RECV_I: ("_on_i", S.CONNECTED),
        _In.RECV_RR: ("_on_rr", S.CONNECTED),
        _In.RECV_RNR: ("_on_rnr", S.CONNECTED),
        _In.RECV_UI: ("_on_ui", S.CONNECTED),
    },
    (Role.SERVER, S.ERROR): {
        _In.SEND_UI: (None, S.ERROR),
        _In.RECV_SNRM: ("_on_snrm", S.CONNECTED),
        _In.RECV_DISC: ("_reply_dm", S.NDM),
        _In.RECV_I: ("_reply_dm", S.NDM),
        _In.RECV_RR: ("_reply_dm", S.NDM),
        _In.RECV_RNR: ("_reply_dm", S.NDM),
        _In.RECV_UI: ("_on_ui", S.ERROR),
    },
}
del S


def _same_station(found: HdlcAddress, expected: HdlcAddress) -> bool:
    return found.upper == expected.upper and found.lower == expected.lower


def _is_broadcast(address: HdlcAddress) -> bool:
    all_ones = 0x3FFF if address.size == 4 else 0x7F
    return all_ones in (address.upper, address.lower)


class HdlcConnection:
    """One end of an HDLC link (see the module docstring)."""

    def __init__(
        self,
        role: Role,
        *,
        client_address: HdlcAddress,
        server_address: HdlcAddress,
        parameters: HdlcParameters | None = None,
        llc: bool = True,
        max_message: int = 0x10000,
        max_buffer: int = DEFAULT_MAX_BUFFER,
    ) -> None:
        self.role = role
        self.client_address = client_address
        self.server_address = server_address
        self.own_parameters = parameters or HdlcParameters()
        """What we propose (client) or accept at most (server)."""
        self.negotiated: HdlcParameters | None = None
        """The parameters in force, from our side, once connected."""
        self.llc = llc
        self.max_message = max_message
        self.ignored = 0
        self._stream = HdlcStream(max_buffer=max_buffer)
        self._state = LinkState.NDM
        self._own, self._peer = (
            (client_address, server_address) if role is Role.CLIENT else (server_address, client_address)
        )
        self._llc_out, self._llc_in = (
            (LLC_REQUEST, LLC_RESPONSE) if role is Role.CLIENT else (LLC_RESPONSE, LLC_REQUEST)
        )
        self._out = bytearray()
        self._events: deque[HdlcEvent] = deque()
        self._handlers: dict[str, Callable[[HdlcFrame], None]] = {
            name: getattr(self, name)
            for name in {h for row in TRANSITIONS.values() for h, _ in row.values() if h is not None}
        }
        self._reset_link()

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def stream(self) -> HdlcStream:
        """The frame decoder underneath (for its ``skipped`` counter)."""
        return self._stream

    @property
    def busy(self) -> bool:
        """True while frames we sent await acknowledgement or segments await sending."""
        return bool(self._unacked or self._queue)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Bytes from the line (``b""``: the line closed)."""
        self._stream.receive_data(data)

    def data_to_send(self) -> bytes:
        """Everything queued for the line since the last call."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def next_event(self) -> HdlcEvent | NeedData:
        while not self._events:
            frame = self._stream.next_event()
            if frame is NEED_DATA:
                return NEED_DATA
            self._handle(frame)
        return self._events.popleft()

    def connect(self) -> None:
        """Client: send SNRM with ``own_parameters`` (repeat after a timeout)."""
        self._require(Role.CLIENT, "connect()")
        self._transition_local(_In.SEND_SNRM)
        self._reset_link()
        self._emit(HdlcFrame(FrameKind.SNRM, self._peer, self._own, self.own_parameters.encode()))

    def disconnect(self) -> None:
        """Client: send DISC (repeat after a timeout)."""
        self._require(Role.CLIENT, "disconnect()")
        self._transition_local(_In.SEND_DISC)
        self._queue.clear()
        self._emit(HdlcFrame(FrameKind.DISC, self._peer, self._own))

    def poll(self) -> None:
        """Client: RR with P=1 after a timeout; the server repeats what we did not get."""
        self._require(Role.CLIENT, "poll()")
        self._transition_local(_In.POLL)
        self._emit(HdlcFrame(FrameKind.RR, self._peer, self._own, receive_sequence=self._vr))

    def send_data(self, data: bytes) -> None:
        """Queue an information field (an APDU); it goes out as one or more I frames."""
        self._transition_local(_In.SEND_I)
        assert self.negotiated is not None
        message = self._llc_out + bytes(data) if self.llc else bytes(data)
        if not message:
            raise LocalProtocolError("send_data() needs at least one byte")
        size = self.negotiated.max_info_tx
        chunks = [message[i : i + size] for i in range(0, len(message), size)]
        for index, chunk in enumerate(chunks):
            self._queue.append((chunk, index < len(chunks) - 1))
        self._transmit()

    def send_unnumbered(self, data: bytes, *, destination: HdlcAddress | None = None) -> None:
        """One UI frame with ``data`` as its information field (to the peer unless ``destination``)."""
        self._transition_local(_In.SEND_UI)
        self._emit(HdlcFrame(FrameKind.UI, destination or self._peer, self._own, bytes(data)))

    # ------------------------------------------------------------------ machinery

    def _require(self, role: Role, what: str) -> None:
        if self.role is not role:
            raise LocalProtocolError(
                f"{what} is for the {role.value} role, this end is the {self.role.value}"
            )

    def _transition_local(self, what: _In) -> None:
        row = TRANSITIONS.get((self.role, self._state), {})
        if what not in row:
            raise LocalProtocolError(f"cannot {what.value} in state {self._state.value} ({self.role.value})")
        self._state = row[what][1]

    def _handle(self, frame: HdlcFrame) -> None:
        if frame.kind is FrameKind.UI:
            if not (_same_station(frame.destination, self._own) or _is_broadcast(frame.destination)):
                self.ignored += 1
                return
        elif not (_same_station(frame.destination, self._own) and _same_station(frame.source, self._peer)):
            self.ignored += 1
            return
        what = _RECEIVED[frame.kind]
        row = TRANSITIONS.get((self.role, self._state), {})
        if what not in row:
            state = self._state
            self._state = LinkState.ERROR
            raise ProtocolError(
                f"{what.value} frame not allowed in state {state.value} ({self.role.value})", layer=LAYER
            )
        handler, next_state = row[what]
        assert handler is not None
        try:
            self._handlers[handler](frame)
        except ProtocolError:
            self._state = LinkState.ERROR
            raise
        self._state = next_state

    def _emit(self, frame: HdlcFrame) -> None:
        self._out += frame.encode()

    def _reset_link(self) -> None:
        self._vs = 0
        self._vr = 0
        self._unacked: deque[HdlcFrame] = deque()
        self._queue: deque[tuple[bytes, bool]] = deque()
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._peer_busy = False

    def _window(self) -> int:
        return self.negotiated.window_tx if self.negotiated else 1

    def _transmit(self) -> None:
        """Send queued segments while the window allows."""
        window = self._window()
        while self._queue and not self._peer_busy and len(self._unacked) < window:
            chunk, more = self._queue.popleft()
            last_of_burst = not self._queue or len(self._unacked) + 1 == window
            frame = HdlcFrame(
                FrameKind.I,
                self._peer,
                self._own,
                chunk,
                poll_final=last_of_burst,
                send_sequence=self._vs,
                receive_sequence=self._vr,
                segmented=more,
            )
            self._vs = (self._vs + 1) % 8
            self._unacked.append(frame)
            self._emit(frame)

    def _resend_unacked(self) -> None:
        count = len(self._unacked)
        for index, frame in enumerate(self._unacked):
            self._emit(replace(frame, receive_sequence=self._vr, poll_final=index == count - 1))

    def _acknowledge(self, nr: int) -> None:
        oldest = (self._vs - len(self._unacked)) % 8
        newly = (nr - oldest) % 8
        if newly > len(self._unacked):
            raise ProtocolError(
                f"N(R)={nr} acknowledges frames never sent (V(S)={self._vs}, {len(self._unacked)} unacknowledged)",
                layer=LAYER,
            )
        for _ in range(newly):
            self._unacked.popleft()

    def _supervisory(self, kind: FrameKind, final: bool = True) -> None:
        self._emit(HdlcFrame(kind, self._peer, self._own, poll_final=final, receive_sequence=self._vr))

    # ------------------------------------------------------------------ handlers (names used in TRANSITIONS)

    def _ignore(self, frame: HdlcFrame) -> None:
        return None

    def _on_ui(self, frame: HdlcFrame) -> None:
        self._events.append(UnnumberedReceived(frame))

    def _on_snrm(self, frame: HdlcFrame) -> None:
        theirs = HdlcParameters.decode(frame.information)
        ours = self.own_parameters
        agreed = HdlcParameters(
            max_info_tx=min(ours.max_info_tx, theirs.max_info_rx),
            max_info_rx=min(ours.max_info_rx, theirs.max_info_tx),
            window_tx=min(ours.window_tx, theirs.window_rx),
            window_rx=min(ours.window_rx, theirs.window_tx),
        )
        self._reset_link()
        self.negotiated = agreed
        self._emit(
            HdlcFrame(FrameKind.UA, self._peer, self._own, agreed.encode(), poll_final=frame.poll_final)
        )
        self._events.append(Connected(agreed))

    def _on_ua_connect(self, frame: HdlcFrame) -> None:
        theirs = HdlcParameters.decode(frame.information)
        ours = self.own_parameters
        agreed = HdlcParameters(
            max_info_tx=min(ours.max_info_tx, theirs.max_info_rx),
            max_info_rx=min(ours.max_info_rx, theirs.max_info_tx),
            window_tx=min(ours.window_tx, theirs.window_rx),
            window_rx=min(ours.window_rx, theirs.window_tx),
        )
        self._reset_link()
        self.negotiated = agreed
        self._events.append(Connected(agreed))

    def _on_ua_disconnect(self, frame: HdlcFrame) -> None:
        self._reset_link()
        self.negotiated = None
        self._events.append(Disconnected(FrameKind.UA))

    def _on_dm(self, frame: HdlcFrame) -> None:
        self._reset_link()
        self.negotiated = None
        self._events.append(Disconnected(FrameKind.DM))

    def _on_disc(self, frame: HdlcFrame) -> None:
        self._reset_link()
        self.negotiated = None
        self._emit(HdlcFrame(FrameKind.UA, self._peer, self._own, poll_final=frame.poll_final))
        self._events.append(Disconnected(FrameKind.DISC))

    def _reply_dm(self, frame: HdlcFrame) -> None:
        self._reset_link()
        self.negotiated = None
        self._emit(HdlcFrame(FrameKind.DM, self._peer, self._own, poll_final=frame.poll_final))

    def _on_frmr(self, frame: HdlcFrame) -> None:
        self._events.append(FrameRejected(frame.information))

    def _on_rr(self, frame: HdlcFrame) -> None:
        self._peer_busy = False
        self._acknowledge(frame.receive_sequence)
        if frame.poll_final and self._unacked:
            self._resend_unacked()  # the peer did not get them
        elif self._queue:
            self._transmit()
        elif frame.poll_final and self.role is Role.SERVER:
            self._supervisory(FrameKind.RR)  # polled with nothing to say

    def _on_rnr(self, frame: HdlcFrame) -> None:
        self._acknowledge(frame.receive_sequence)
        self._peer_busy = True

    def _on_i(self, frame: HdlcFrame) -> None:
        self._peer_busy = False
        self._acknowledge(frame.receive_sequence)
        if frame.send_sequence != self._vr:
            # A repeat (our answer was lost) or a gap: drop it, say where we are.
            if frame.poll_final:
                if self._unacked:
                    self._resend_unacked()
                else:
                    self._supervisory(FrameKind.RR)
            return
        self._vr = (self._vr + 1) % 8
        self._parts_size += len(frame.information)
        if self._parts_size > self.max_message:
            self._parts.clear()
            self._parts_size = 0
            raise FramingError(f"reassembled information field exceeds {self.max_message} bytes", layer=LAYER)
        self._parts.append(frame.information)
        if frame.segmented:
            if frame.poll_final:
                self._supervisory(FrameKind.RR)
            return
        message = b"".join(self._parts)
        self._parts.clear()
        self._parts_size = 0
        if self.llc:
            if message[:3] != self._llc_in:
                raise FramingError(
                    f"LLC header {self._llc_in.hex(' ').upper()} expected, found {message[:3].hex(' ').upper()}",
                    offset=0,
                    layer=LAYER,
                )
            message = message[3:]
        self._events.append(DataReceived(message))
        if self._queue:
            self._transmit()
