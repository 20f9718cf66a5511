"""DLMS/COSEM application layer: A-XDR, APDUs, security suite 0, COSEM objects."""
