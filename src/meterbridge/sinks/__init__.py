"""meterbridge.sinks (see ARCHITECTURE.md)."""
