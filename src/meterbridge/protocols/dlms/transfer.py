"""Block transfer: General Block Transfer (GBT) and GET-with-datablock, split and reassembled.

Holds ``split_general_block_transfer`` (an APDU into ``GeneralBlockTransfer`` blocks of any
size), ``GeneralBlockReassembler`` (the receiving side: a transfer starts at block 1, block numbers
must follow each other, blocks of a transfer whose start was not seen are skipped, the last-block bit
ends the APDU, acknowledgements for the sender), ``split_get_response``
(a long GET answer into ``GetResponseWithDatablock`` blocks) and ``DatablockReassembler``.
Both reassemblers hold at most ``max_size`` bytes and say so when a peer exceeds it.
"""

from __future__ import annotations

from meterbridge.errors import FramingError
from meterbridge.protocols.dlms.apdu import (
    DataAccessResult,
    GeneralBlockTransfer,
    GetResponseWithDatablock,
)

__all__ = [
    "DEFAULT_MAX_APDU",
    "DatablockReassembler",
    "GeneralBlockReassembler",
    "split_general_block_transfer",
    "split_get_response",
]

LAYER = "dlms"
DEFAULT_MAX_APDU = 1 << 20
"""Largest reassembled APDU accepted by default (1 MiB)."""


def split_general_block_transfer(
    apdu: bytes, block_size: int, *, first_block_number: int = 1, streaming: bool = True, window: int = 1
) -> list[GeneralBlockTransfer]:
    """Cut ``apdu`` into GBT blocks of at most ``block_size`` data bytes, numbered from ``first_block_number``."""
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    chunks = [apdu[i : i + block_size] for i in range(0, len(apdu), block_size)] or [b""]
    last = len(chunks) - 1
    return [
        GeneralBlockTransfer(
            last_block=i == last,
            block_number=(first_block_number + i) & 0xFFFF,
            block_data=chunk,
            streaming=streaming and i != last,
            window=window,
        )
        for i, chunk in enumerate(chunks)
    ]


class GeneralBlockReassembler:
    """Collects GBT blocks; ``add`` answers the whole APDU when the last block arrives, else ``None``.

    A transfer starts at block number 1 and the numbers rise by one. Blocks of a transfer whose
    start was not seen (a listener that came up in the middle of a push, or the rest of a transfer
    dropped after a gap) are discarded silently and counted in ``skipped_blocks``; the next block 1
    starts a new transfer. A gap, a repeat or a block beyond the size limit inside a transfer is a
    ``FramingError`` and drops the transfer.
    """

    __slots__ = ("_expected", "_parts", "_size", "max_size", "skipped_blocks")

    def __init__(self, max_size: int = DEFAULT_MAX_APDU) -> None:
        self.max_size = max_size
        self._parts: list[bytes] = []
        self._size = 0
        self._expected: int | None = None
        self.skipped_blocks = 0
        """Blocks discarded because the start of their transfer was not seen."""

    @property
    def in_progress(self) -> bool:
        return self._expected is not None

    @property
    def last_block_number(self) -> int:
        """Number of the last block taken (for the block-number-ack the receiver sends)."""
        return 0 if self._expected is None else (self._expected - 1) & 0xFFFF

    def reset(self) -> None:
        self._parts = []
        self._size = 0
        self._expected = None

    def add(self, block: GeneralBlockTransfer) -> bytes | None:
        return self.add_block(block.last_block, block.block_number, block.block_data)

    def add_block(self, last_block: bool, block_number: int, block_data: bytes) -> bytes | None:
        """``add`` for a block already taken apart (the push path reads GBT headers itself)."""
        expected = self._expected
        if expected is None:
            if block_number != 1:  # the start of this transfer was not seen: nothing to build on
                self.skipped_blocks += 1
                return None
        elif block_number != expected:
            taken = len(self._parts)
            self.reset()
            dropped = (
                f"general-block-transfer block {block_number} where block {expected} was expected:"
                f" transfer dropped ({taken} block{'s' if taken != 1 else ''} discarded"
            )
            if block_number == 1 and not last_block:  # a new transfer began: keep it, report the old one
                self.add_block(last_block, block_number, block_data)
                raise FramingError(dropped + ", the new transfer starting here is kept)", layer=LAYER)
            if block_number == 1:
                raise FramingError(
                    dropped + ", and the one-block transfer arriving here with it)", layer=LAYER
                )
            raise FramingError(dropped + ", its later blocks are skipped until a block 1)", layer=LAYER)
        self._size += len(block_data)
        if self._size > self.max_size:
            self.reset()
            raise FramingError(f"general-block-transfer APDU exceeds {self.max_size} bytes", layer=LAYER)
        self._parts.append(block_data)
        self._expected = (block_number + 1) & 0xFFFF
        if not last_block:
            return None
        whole = b"".join(self._parts)
        self.reset()
        return whole

    def ack(self, window: int = 1) -> GeneralBlockTransfer:
        """The acknowledgement a receiver sends after a window (no data, block-number-ack set)."""
        return GeneralBlockTransfer(
            last_block=False,
            block_number=0,
            block_data=b"",
            block_number_ack=self.last_block_number,
            window=window,
        )


def split_get_response(
    invoke_id: int, encoded_data: bytes, block_size: int
) -> list[GetResponseWithDatablock]:
    """Cut an encoded ``Data`` answer into GET-response-with-datablock blocks numbered from 1."""
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    chunks = [encoded_data[i : i + block_size] for i in range(0, len(encoded_data), block_size)] or [b""]
    return [
        GetResponseWithDatablock(invoke_id, i == len(chunks) - 1, i + 1, chunk)
        for i, chunk in enumerate(chunks)
    ]


class DatablockReassembler:
    """Client side of GET with-block: blocks numbered 1, 2, ...; answers the data bytes at the last one."""

    __slots__ = ("_next", "_parts", "_size", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_APDU) -> None:
        self.max_size = max_size
        self._parts: list[bytes] = []
        self._size = 0
        self._next = 1

    @property
    def next_block(self) -> int:
        return self._next

    def add(self, block: GetResponseWithDatablock) -> bytes | None:
        if isinstance(block.raw_data, DataAccessResult):
            raise FramingError(f"meter aborted the block transfer: {block.raw_data.reason}", layer=LAYER)
        if block.block_number != self._next:
            raise FramingError(
                f"data block {block.block_number} where block {self._next} was expected", layer=LAYER
            )
        self._size += len(block.raw_data)
        if self._size > self.max_size:
            raise FramingError(f"GET answer exceeds {self.max_size} bytes", layer=LAYER)
        self._parts.append(block.raw_data)
        self._next += 1
        if not block.last_block:
            return None
        return b"".join(self._parts)
