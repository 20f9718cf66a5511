"""meterbridge.simulator (see ARCHITECTURE.md)."""
