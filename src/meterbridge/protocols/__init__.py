"""Sans-IO protocol codecs: bytes in, events or frames out, both roles.

Nothing in this package touches a port, a socket, a loop or a clock (see
ARCHITECTURE.md; ``tests/test_layers.py`` keeps that true).
"""

from __future__ import annotations

from meterbridge.protocols.events import NEED_DATA, NeedData

__all__ = ["NEED_DATA", "NeedData"]
