"""DLMS/COSEM application layer: A-XDR, APDUs, security suite 0, COSEM objects, the association, pushes.

Modules: ``axdr`` (COSEM data types both ways), ``apdu`` (every APDU, one ``decode_apdu``),
``security`` (AES-GCM suite 0, HLS-GMAC, replay guard), ``transfer`` (general block transfer and
GET with-block), ``cosem`` (interface classes to readings, profile generic), ``association``
(``DlmsClient`` and ``DlmsServer`` at APDU level), ``push`` (meter pushes to readings, sans-IO),
``wrapper`` (IEC 62056-47 over TCP/UDP). The names most callers need are re-exported here.
"""

from __future__ import annotations

from meterbridge.protocols.dlms.apdu import Apdu, DataAccessResult, decode_apdu
from meterbridge.protocols.dlms.association import DlmsClient, DlmsServer, HlsGmac, Lls
from meterbridge.protocols.dlms.axdr import CosemDateTime, Data, DataType, decode_data, encode_data
from meterbridge.protocols.dlms.cosem import CaptureObject, ScalerUnit, range_descriptor
from meterbridge.protocols.dlms.push import PushDecoder, PushError, PushReadings, RegisterFormat
from meterbridge.protocols.dlms.security import ReplayGuard, SecurityContext, SecurityKeys

__all__ = [
    "Apdu",
    "CaptureObject",
    "CosemDateTime",
    "Data",
    "DataAccessResult",
    "DataType",
    "DlmsClient",
    "DlmsServer",
    "HlsGmac",
    "Lls",
    "PushDecoder",
    "PushError",
    "PushReadings",
    "RegisterFormat",
    "ReplayGuard",
    "ScalerUnit",
    "SecurityContext",
    "SecurityKeys",
    "decode_apdu",
    "decode_data",
    "encode_data",
    "range_descriptor",
]
