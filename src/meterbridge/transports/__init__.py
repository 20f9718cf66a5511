"""meterbridge.transports (see ARCHITECTURE.md)."""
