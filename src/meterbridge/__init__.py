"""meterbridge: reads smart meters and hands their readings to the people and systems that use them."""

from __future__ import annotations

from meterbridge.errors import MeterbridgeError
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading

__all__ = ["MeterbridgeError", "ObisCode", "Quality", "Reading", "__version__"]
__version__ = "0.1.0"
