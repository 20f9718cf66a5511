"""The gateway's Prometheus metrics: one ``CollectorRegistry`` per running gateway.

``GatewayMetrics`` holds

* ``meterbridge_gateway_poll_seconds`` (histogram, label ``source``): how long each poll of a polled
  source took (one meter read: the optical port, a DLMS association; on an M-Bus, one read of one meter,
  labelled with the bus source's name), successful or not;
* ``meterbridge_gateway_poll_errors_total`` (counter, labels ``source`` and ``kind``): failed polls, by
  the error's class name (``TimeoutError``, ``DlmsTimeout``, ``AssociationRefused``, ``ChecksumError``,
  ``ConnectionRefusedError`` ...: a bounded set, never the message);
* ``meterbridge_gateway_readings_stored_total`` (counter): readings written to the store by the pipeline.

``cli/run.py`` creates one, hands ``registry`` to the web layer's ``create_app(registry=...)`` (its
``/metrics`` shows them after the store's own figures) and the object to ``run_gateway(metrics=...)``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["POLL_BUCKETS", "GatewayMetrics"]

#: seconds: M-Bus reads take tens of milliseconds, an optical readout at 300 baud tens of seconds
POLL_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class GatewayMetrics:
    """The registry and its three metrics (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.poll_seconds = Histogram(
            "meterbridge_gateway_poll_seconds",
            "Duration of one poll of a meter (successful or not), by source.",
            ["source"],
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self.poll_errors = Counter(
            "meterbridge_gateway_poll_errors",
            "Failed polls, by source and error class.",
            ["source", "kind"],
            registry=self.registry,
        )
        self.readings_stored = Counter(
            "meterbridge_gateway_readings_stored",
            "Readings written to the store.",
            registry=self.registry,
        )

    def poll(self, source: str, seconds: float, error: BaseException | None = None) -> None:
        """Record one poll of ``source`` that took ``seconds``, failed with ``error`` if given."""
        self.poll_seconds.labels(source).observe(max(0.0, seconds))
        if error is not None:
            self.poll_errors.labels(source, type(error).__name__).inc()

    def stored(self, count: int) -> None:
        if count:
            self.readings_stored.inc(count)
