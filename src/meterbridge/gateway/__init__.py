"""meterbridge.gateway (see ARCHITECTURE.md)."""
