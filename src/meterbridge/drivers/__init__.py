"""meterbridge.drivers (see ARCHITECTURE.md)."""
