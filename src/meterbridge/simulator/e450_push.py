"""The E450 customer interface (CII) push: HDLC UI frames carrying a General Block Transfer.

:class:`CiiPushEncoder` turns a model snapshot into the frames the meter writes on its
CII every ``push_interval`` seconds (2400 baud 8E1, M-Bus physical layer):

    HDLC UI (7E A0 .., destination CE FF = 103/127, source 03 = 1, control 13)
      LLC E6 E7 00 (first frame only)
        General-Block-Transfer E0 (block numbers from 1, last-block bit on the last)
          Data-Notification 0F (long-invoke-id, local date-time without deviation, status 00,
                                body = push_body(snapshot))
          or, encrypted: general-glo-ciphering DB 08 <system title "LGZ..."> SC 30 IC ... tag

The long-invoke-id rises with every push; with keys, the invocation counter rises with
every push too (never reused: a receiver's replay guard must accept each new push and
refuse a replayed one). Without an authentication key the meter still computes the tag
with its own ``default_authentication_key`` - a reader that only has the encryption key
can decrypt but not verify, exactly the field situation FIELD_NOTES describes.
"""

from __future__ import annotations

from typing import Final

from meterbridge.protocols.dlms.apdu import DataNotification, GeneralBlockTransfer, GeneralGloCiphering
from meterbridge.protocols.dlms.axdr import ClockStatus, Data
from meterbridge.protocols.dlms.security import SecurityControl, SecurityKeys, encrypt
from meterbridge.protocols.hdlc import FrameKind, HdlcAddress, HdlcFrame
from meterbridge.simulator.e450_cosem import push_body, push_date_time
from meterbridge.simulator.e450_model import Snapshot

__all__ = ["CII_DESTINATION", "CII_SOURCE", "DEFAULT_SYSTEM_TITLE", "CiiPushEncoder"]

CII_DESTINATION: Final = HdlcAddress.server(103, 127)  # CE FF
CII_SOURCE: Final = HdlcAddress.client(1)  # 03
DEFAULT_SYSTEM_TITLE: Final = b"LGZ\x67\x4a\x0b\x2c\x11"
_LLC: Final = b"\xe6\xe7\x00"


class CiiPushEncoder:
    """Builds CII pushes (see the module docstring)."""

    def __init__(
        self,
        *,
        encryption_key: bytes | None = None,
        authentication_key: bytes | None = None,
        default_authentication_key: bytes = bytes(range(0xD0, 0xE0)),
        system_title: bytes = DEFAULT_SYSTEM_TITLE,
        invocation_counter: int = 1,
        long_invoke_id: int = 0x00D7DD82,
        block_size: int = 120,
        timezone: str = "Europe/Zurich",
    ) -> None:
        if authentication_key is not None and encryption_key is None:
            raise ValueError("CII push: an authentication key needs an encryption key too")
        self._keys = (
            None
            if encryption_key is None
            else SecurityKeys(encryption_key, authentication_key or default_authentication_key)
        )
        self.system_title = system_title
        self.invocation_counter = invocation_counter
        self.long_invoke_id = long_invoke_id
        self.block_size = block_size
        self.timezone = timezone

    def __repr__(self) -> str:
        return f"CiiPushEncoder(encrypted={self.encrypted}, invocation_counter={self.invocation_counter})"

    @property
    def encrypted(self) -> bool:
        return self._keys is not None

    def apdu(self, snapshot: Snapshot) -> bytes:
        """The Data-Notification (encrypted: general-glo-ciphering around it) for ``snapshot``."""
        stamp = push_date_time(snapshot.at, self.timezone, ClockStatus.OK)
        body: Data = push_body(snapshot, self.timezone)
        plain = DataNotification(self.long_invoke_id, stamp, body).encode()
        self.long_invoke_id = (self.long_invoke_id + 1) & 0xFFFFFFFF
        if self._keys is None:
            return plain
        protected = encrypt(
            plain,
            system_title=self.system_title,
            invocation_counter=self.invocation_counter,
            keys=self._keys,
            security_control=SecurityControl.AUTHENTICATED_AND_ENCRYPTED,
        )
        self.invocation_counter += 1
        return GeneralGloCiphering(self.system_title, protected).encode()

    def frames(self, snapshot: Snapshot) -> list[bytes]:
        """The HDLC frames of one push, each a complete ``7E ... 7E`` frame."""
        return self.frames_for_apdu(self.apdu(snapshot))

    def frames_for_apdu(self, apdu: bytes) -> list[bytes]:
        chunks = [apdu[i : i + self.block_size] for i in range(0, len(apdu), self.block_size)]
        out = []
        for index, chunk in enumerate(chunks):
            # as the E450 sends it: streaming bit on every block, window 0, numbers from 1
            block = GeneralBlockTransfer(
                last_block=index == len(chunks) - 1,
                block_number=index + 1,
                block_data=chunk,
                streaming=True,
                window=0,
            )
            info = block.encode()
            if index == 0:
                info = _LLC + info
            frame = HdlcFrame(FrameKind.UI, CII_DESTINATION, CII_SOURCE, info, poll_final=True)
            out.append(frame.encode())
        return out
