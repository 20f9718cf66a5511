"""meterbridge.web (see ARCHITECTURE.md)."""
