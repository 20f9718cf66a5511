"""Sentinels shared by every streaming codec."""

from __future__ import annotations

import enum
from typing import Final, Literal

__all__ = ["NEED_DATA", "NeedData"]


class NeedData(enum.Enum):
    """Returned by ``next_event()`` when the codec needs more bytes to make progress."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final[Literal[NeedData.NEED_DATA]] = NeedData.NEED_DATA
