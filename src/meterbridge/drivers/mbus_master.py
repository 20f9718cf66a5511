"""The M-Bus master: primary and secondary scans, reads, selection, addressing, baud switch.

:class:`MBusMaster` pairs the sans-IO codec (``meterbridge.protocols.mbus``) with any
``Transport`` (serial, TCP gateway, PTY, a ``VirtualLine`` port in virtual time). Timing
follows EN 13757-2: a slave answers between 11 bit times and 330 bit times + 50 ms after
the request's last stop bit, at the line's baud rate; ``extra_timeout`` adds latency of a
TCP gateway.

* :meth:`MBusMaster.scan_primary` - SND_NKE to each address; the full reply window is
  always waited so that a second slave answering late is seen; a garbled answer (two
  slaves at one address, or noise) is retried ``retries`` times and otherwise reported as
  a collision; with ``identify`` every answering address is read once (REQ_UD2) for its
  secondary address, manufacturer and medium.
* :meth:`MBusMaster.scan_secondary` - wildcard selection (SND_UD CI 52): no answer prunes
  the branch; a clean E5 is confirmed by REQ_UD2 to 253 (several slaves can AND into one
  clean E5, their long frames cannot); a collision narrows the next digit (0-9 in the
  BCD identification, 0-E in the hex manufacturer/version/medium fields; A-E in the
  identification, and F in the hex fields - where F is also the wildcard - only when no
  child of a colliding prefix answered). The root is probed first with all wildcards (an
  empty or one-meter bus costs one or two probes).
* :meth:`MBusMaster.read` - SND_NKE (primary) or select + application reset (secondary),
  then REQ_UD2 with FCB toggled per telegram while "more records follow"; an answer that
  is garbled is asked again with the *same* FCB (the slave repeats its telegram), never
  turned into values.
* :meth:`MBusMaster.select`, :meth:`set_primary_address`, :meth:`switch_baud`.

Results are frozen dataclasses; :meth:`ReadResult.readings` gives ``Reading`` values.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from meterbridge.errors import MeterbridgeError, ProtocolError
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.mbus import (
    ADDRESS_NETWORK_LAYER,
    ApplicationReset,
    ControlFrame,
    Frame,
    LinkNoise,
    LongFrame,
    MBusLink,
    ReqUd2,
    Request,
    Response,
    SecondaryAddress,
    SelectSecondary,
    SetBaudRate,
    SetPrimaryAddress,
    SingleCharacter,
    SndNke,
    VariableDataResponse,
    decode_response,
    to_readings,
)
from meterbridge.readings import Reading
from meterbridge.transports import LineSettings, Transport
from meterbridge.transports.line import MBUS_2400
from meterbridge.transports.transport import TransportTimeout

__all__ = [
    "Answer",
    "MBusMaster",
    "MBusReadError",
    "Outcome",
    "PrimaryScanEntry",
    "PrimaryScanResult",
    "ReadResult",
    "SecondaryScanEntry",
    "SecondaryScanResult",
    "parse_target",
    "reply_window",
]

MAX_TELEGRAMS = 16
ID_DIGITS = "0123456789"
HEX_DIGITS = "0123456789ABCDE"  # F is the wildcard itself


def reply_window(line: LineSettings) -> float:
    """Seconds from the end of a request to the latest start of a reply (330 bit times + 50 ms)."""
    return 330 * line.bit_time + 0.050


#: silence (seconds) that ends a reply received through a socket rather than a serial line
SOCKET_REPLY_GAP = 0.3


class Outcome(enum.Enum):
    NONE = "none"  # nothing within the reply window
    ACK = "ack"  # exactly one clean E5
    FRAME = "frame"  # exactly one clean frame (long or control)
    GARBLED = "garbled"  # noise, a bad checksum, or more than one answer: a collision


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back for one request."""

    outcome: Outcome
    frames: tuple[Frame, ...] = ()
    noise: tuple[LinkNoise, ...] = ()

    @property
    def frame(self) -> Frame | None:
        return self.frames[0] if self.outcome in (Outcome.FRAME, Outcome.ACK) else None


class MBusReadError(MeterbridgeError):
    """A read did not produce a complete, clean readout (no answer, collisions, bad frames)."""


@dataclass(frozen=True, slots=True)
class PrimaryScanEntry:
    address: int
    secondary: SecondaryAddress | None = None
    manufacturer: str | None = None
    medium: str | None = None
    version: int | None = None
    collision: bool = False
    retries: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "secondary": None if self.secondary is None else str(self.secondary),
            "id": None if self.secondary is None else self.secondary.identification,
            "manufacturer": self.manufacturer,
            "version": self.version,
            "medium": self.medium,
            "collision": self.collision,
            "retries": self.retries,
        }


@dataclass(frozen=True, slots=True)
class PrimaryScanResult:
    found: tuple[PrimaryScanEntry, ...]
    probes: int
    retries: int
    line_time: float  # seconds on the transport's clock

    @property
    def collisions(self) -> tuple[int, ...]:
        return tuple(e.address for e in self.found if e.collision)


@dataclass(frozen=True, slots=True)
class SecondaryScanEntry:
    secondary: SecondaryAddress
    primary: int  # the address field of its answer
    manufacturer: str
    medium: str
    version: int

    def to_dict(self) -> dict[str, object]:
        return {
            "secondary": str(self.secondary),
            "id": self.secondary.identification,
            "primary": self.primary,
            "manufacturer": self.manufacturer,
            "version": self.version,
            "medium": self.medium,
        }


@dataclass(frozen=True, slots=True)
class SecondaryScanResult:
    found: tuple[SecondaryScanEntry, ...]
    probes: int
    collisions: int  # probes whose answer was garbled (and were narrowed)
    unresolved: tuple[str, ...]  # full patterns that still collide (identical secondary addresses)
    line_time: float


@dataclass(frozen=True, slots=True)
class ReadResult:
    target: str
    responses: tuple[Response, ...]
    retries: int
    timestamp: datetime

    def readings(self) -> list[Reading]:
        out: list[Reading] = []
        offset = 0
        for response in self.responses:
            out += to_readings(response, timestamp=self.timestamp, index_offset=offset)
            offset += len(getattr(response, "records", ()))
        return out


Target = int | SecondaryAddress | str


@dataclass(slots=True)
class _Progress:
    callback: Callable[[str, int, int], None] | None
    done: int = 0
    total: int = 0

    def step(self, what: str) -> None:
        self.done += 1
        if self.callback:
            self.callback(what, self.done, self.total)


class MBusMaster:
    """An M-Bus master on one transport (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        line: LineSettings | None = None,
        retries: int = 2,
        extra_timeout: float = 0.0,
    ) -> None:
        self.transport = transport
        self.line = line or transport.line or MBUS_2400
        self.retries = retries
        self.extra_timeout = extra_timeout
        self.clock = transport.clock
        self._link = MBusLink()
        self._fcb: dict[int, bool] = {}  # next FCB per primary address (253: the selected slave)
        self.probes = 0

    # ------------------------------------------------------------------ one exchange

    async def exchange(self, request: Request, *, full_window: bool = False) -> Answer:
        """Send ``request`` and collect what comes back within the reply window.

        ``full_window``: keep listening until the window closes even after a clean answer
        (a second slave's late answer then shows as a collision). Otherwise return as soon
        as one complete frame has arrived and the line is quiet.
        """
        line = self.line
        link = self._link
        link.clear()
        wire = link.send(request)
        self.transport.discard_input()
        await self.transport.write(wire)
        await self.transport.drain()
        self.probes += 1
        clock = self.clock
        window_end = clock.monotonic() + reply_window(line) + self.extra_timeout
        if self.transport.line is None:  # a socket: the gateway still has to send the request
            window_end += line.transmit_time(len(wire))
        gap = 4 * line.char_time + self.extra_timeout  # silence that ends a reply
        if self.transport.line is None:
            # through a TCP gateway a reply arrives in chunks whose spacing the network and the
            # gateway decide, not the line: a short stall must not cut a reply in two
            gap = max(gap, SOCKET_REPLY_GAP)
        frames: list[Frame] = []
        noise: list[LinkNoise] = []
        received = False
        while True:
            now = clock.monotonic()
            if received:
                timeout = max(window_end - now, gap) if full_window else gap
            else:
                timeout = window_end - now
                if timeout <= 0:
                    break
            try:
                data = await self.transport.read(timeout=timeout)
            except TransportTimeout:
                break
            received = True
            link.receive_data(data)
            self._drain(link, frames, noise)
            if not full_window and frames and not noise and link.buffered == 0:
                break
        link.receive_data(b"")
        self._drain(link, frames, noise)
        if noise or len(frames) > 1:
            return Answer(Outcome.GARBLED, tuple(frames), tuple(noise))
        if not frames:
            return Answer(Outcome.NONE)
        if isinstance(frames[0], SingleCharacter):
            return Answer(Outcome.ACK, tuple(frames))
        return Answer(Outcome.FRAME, tuple(frames))

    @staticmethod
    def _drain(link: MBusLink, frames: list[Frame], noise: list[LinkNoise]) -> None:
        while (event := link.next_event()) is not NEED_DATA:
            if isinstance(event, LinkNoise):
                noise.append(event)
            else:
                frames.append(event)

    async def _request_ack(self, request: Request) -> Answer:
        answer = await self.exchange(request)
        tries = 0
        while answer.outcome is Outcome.GARBLED and tries < self.retries:
            tries += 1
            answer = await self.exchange(request)
        return answer

    # ------------------------------------------------------------------ scans

    async def scan_primary(
        self,
        addresses: Iterable[int] = range(0, 251),
        *,
        identify: bool = True,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> PrimaryScanResult:
        """SND_NKE to each address (see the module docstring)."""
        start = self.clock.monotonic()
        probes0 = self.probes
        wanted = list(addresses)
        tracker = _Progress(progress, total=len(wanted))
        found: list[PrimaryScanEntry] = []
        total_retries = 0
        for address in wanted:
            answer = await self.exchange(SndNke(address), full_window=True)
            retries = 0
            while answer.outcome is Outcome.GARBLED and retries < self.retries:
                retries += 1
                answer = await self.exchange(SndNke(address), full_window=True)
            total_retries += retries
            tracker.step(f"address {address}")
            if answer.outcome is Outcome.NONE:
                continue
            self._fcb[address] = True
            collision = answer.outcome is not Outcome.ACK
            entry = PrimaryScanEntry(address, collision=collision, retries=retries)
            if identify:
                reply = await self.exchange(ReqUd2(address, fcb=True), full_window=True)
                self._fcb[address] = False
                if reply.outcome is Outcome.FRAME and isinstance(reply.frames[0], LongFrame):
                    try:
                        response = decode_response(reply.frames[0])
                    except ProtocolError:
                        entry = PrimaryScanEntry(address, collision=True, retries=retries)
                    else:
                        entry = _primary_entry(address, response, collision, retries)
                elif reply.outcome is Outcome.GARBLED:
                    entry = PrimaryScanEntry(address, collision=True, retries=retries)
            found.append(entry)
        return PrimaryScanResult(
            tuple(found), self.probes - probes0, total_retries, self.clock.monotonic() - start
        )

    async def _probe(self, pattern: str) -> tuple[str, VariableDataResponse | None]:
        """``("none" | "one" | "collision", response)`` for one selection pattern."""
        answer = await self.exchange(SelectSecondary(pattern))
        if answer.outcome is Outcome.NONE:
            return "none", None
        if answer.outcome is not Outcome.ACK:
            return "collision", None
        confirm = await self.exchange(ReqUd2(ADDRESS_NETWORK_LAYER, fcv=False), full_window=True)
        if confirm.outcome is Outcome.FRAME and isinstance(confirm.frames[0], LongFrame):
            try:
                response = decode_response(confirm.frames[0])
            except ProtocolError:
                return "collision", None
            if isinstance(response, VariableDataResponse) and response.secondary_address is not None:
                return "one", response
        if confirm.outcome is Outcome.NONE:
            return "none", None  # the E5 was noise and nobody is selected
        return "collision", None

    async def scan_secondary(
        self, *, progress: Callable[[str, int, int], None] | None = None, root: str = ""
    ) -> SecondaryScanResult:
        """Find every slave by secondary address (see the module docstring)."""
        start = self.clock.monotonic()
        probes0 = self.probes
        tracker = _Progress(progress)
        found: dict[str, SecondaryScanEntry] = {}
        unresolved: list[str] = []
        collisions = 0

        async def explore(prefix: str) -> bool:
            """Probe ``prefix`` + wildcards; True when anything answered below it."""
            nonlocal collisions
            pattern = prefix + "F" * (16 - len(prefix))
            tracker.total = max(tracker.total, tracker.done + 1)
            status, response = await self._probe(pattern)
            tracker.step(pattern)
            if status == "none":
                return False
            if status == "one" and response is not None:
                secondary = response.secondary_address
                assert secondary is not None
                found.setdefault(
                    str(secondary),
                    SecondaryScanEntry(
                        secondary,
                        response.address,
                        response.manufacturer or "",
                        response.medium_name or "",
                        response.version or 0,
                    ),
                )
                return True
            collisions += 1
            position = len(prefix)
            if position == 16:
                unresolved.append(pattern)
                return True
            tracker.total += 10 if position < 8 else 15
            answered = False
            for digit in ID_DIGITS if position < 8 else HEX_DIGITS:
                answered |= await explore(prefix + digit)
            if not answered:
                # nobody under 0-9 (0-E): the colliding slaves have a hex digit in their
                # identification here, or F in a hex field (F matches only as wildcard)
                extra = "ABCDE" if position < 8 else "F"
                for digit in extra:
                    answered |= await explore(prefix + digit)
            return True

        await explore(root)
        await self.exchange(SndNke(ADDRESS_NETWORK_LAYER))  # deselect
        return SecondaryScanResult(
            tuple(sorted(found.values(), key=lambda e: str(e.secondary))),
            self.probes - probes0,
            collisions,
            tuple(unresolved),
            self.clock.monotonic() - start,
        )

    # ------------------------------------------------------------------ addressing

    async def select(self, secondary: SecondaryAddress | str) -> bool:
        """Select one slave by its full secondary address (or a pattern); True on E5."""
        pattern = str(secondary) if isinstance(secondary, SecondaryAddress) else secondary.upper()
        answer = await self._request_ack(SelectSecondary(pattern))
        return answer.outcome is Outcome.ACK

    async def _address_of(self, target: Target) -> int:
        if isinstance(target, int):
            return target
        if not await self.select(target):
            raise MBusReadError(f"no slave answered the selection of {target}")
        return ADDRESS_NETWORK_LAYER

    async def set_primary_address(self, target: Target, new_address: int) -> None:
        address = await self._address_of(target)
        answer = await self._request_ack(SetPrimaryAddress(address, new_address))
        if answer.outcome is not Outcome.ACK:
            raise MBusReadError(f"address change to {new_address} not acknowledged ({answer.outcome.value})")
        self._fcb.pop(address, None)

    async def switch_baud(self, target: Target, baud: int) -> None:
        """Ask the slave to switch speed (CI B8..BF), then switch our side after its E5."""
        address = await self._address_of(target)
        answer = await self._request_ack(SetBaudRate(address, baud))
        if answer.outcome is not Outcome.ACK:
            raise MBusReadError(f"baud switch to {baud} not acknowledged ({answer.outcome.value})")
        self.line = self.line.with_baud(baud)
        if self.transport.line is not None:
            await self.transport.set_line(self.line)

    # ------------------------------------------------------------------ reading

    async def read(self, target: Target, *, max_telegrams: int = MAX_TELEGRAMS) -> ReadResult:
        """Every telegram of one slave (multi-telegram with FCB), checked and decoded."""
        retries = 0
        if isinstance(target, int):
            address = target
            reset: Request = SndNke(address)
        else:
            address = await self._address_of(target)
            reset = ApplicationReset(address)
        answer = await self._request_ack(reset)
        if answer.outcome is Outcome.NONE and not isinstance(target, int):
            pass  # a selected slave without application reset: it still answers REQ_UD2 to 253
        elif answer.outcome is not Outcome.ACK:
            raise MBusReadError(
                f"{_described(target)}: {_NO_ACK[answer.outcome]} to {_REQUEST_NAME[type(reset)]}"
            )
        self._fcb[address] = True
        responses: list[Response] = []
        timestamp = self.clock.now()
        while len(responses) < max_telegrams:
            fcb = self._fcb.get(address, True)
            response = None
            for _attempt in range(self.retries + 1):
                reply = await self.exchange(ReqUd2(address, fcb=fcb))
                if reply.outcome is Outcome.FRAME and isinstance(reply.frames[0], LongFrame | ControlFrame):
                    try:
                        response = decode_response(reply.frames[0])
                    except ProtocolError:
                        response = None
                    if response is not None:
                        break
                retries += 1  # same FCB again: the slave repeats the telegram we missed
            if response is None:
                raise MBusReadError(
                    f"{_described(target)}: no clean telegram to REQ_UD2 after {self.retries + 1} attempts "
                    f"(last: {_LAST_ANSWER[reply.outcome]})"
                )
            self._fcb[address] = not fcb
            responses.append(response)
            if not response.more_records_follow:
                break
        else:
            raise MBusReadError(f"{_described(target)}: more than {max_telegrams} telegrams")
        return ReadResult(_label(target), tuple(responses), retries, timestamp)


def _label(target: Target) -> str:
    return str(target)


def _described(target: Target) -> str:
    return f"primary address {target}" if isinstance(target, int) else f"secondary address {target}"


# why a reset was not acknowledged, in words (the outcome of the exchange)
_NO_ACK = {
    Outcome.NONE: "no meter answered (no E5 within the reply window)",
    Outcome.GARBLED: "garbled answer (noise, or several meters answering at once)",
    Outcome.FRAME: "a frame instead of the E5 acknowledgement",
}
_LAST_ANSWER = {
    Outcome.NONE: "no answer within the reply window",
    Outcome.GARBLED: "garbled: noise, or several meters answering at once",
    Outcome.FRAME: "a frame that is no telegram",
    Outcome.ACK: "an E5 acknowledgement instead of a telegram",
}
_REQUEST_NAME = {SndNke: "SND_NKE", ApplicationReset: "the application reset (SND_UD CI 0x50)"}


def _primary_entry(address: int, response: Response, collision: bool, retries: int) -> PrimaryScanEntry:
    if isinstance(response, VariableDataResponse):
        return PrimaryScanEntry(
            address,
            response.secondary_address,
            response.manufacturer,
            response.medium_name,
            response.version,
            collision,
            retries,
        )
    return PrimaryScanEntry(address, None, None, response.medium_name, None, collision, retries)


def parse_target(text: str) -> Target:
    """``"5"`` -> primary 5; 16 hex digits -> a secondary address (F digits: a pattern)."""
    text = text.strip()
    if text.isdigit() and len(text) <= 3:
        value = int(text)
        if not 0 <= value <= 250:
            raise ValueError(f"a primary address is 0..250, got {value}")
        return value
    if len(text) == 16:
        if "F" in text[:8].upper():
            return text.upper()
        return SecondaryAddress.parse(text)
    raise ValueError(f"expected a primary address (0..250) or a 16 hex digit secondary address, got {text!r}")
