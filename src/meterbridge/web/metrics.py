"""Prometheus figures for ``/metrics``: what the store knows, plus the gateway's own registry.

``StoreCollector`` reads the store at scrape time: outbox depth per sink, last seen per meter, events
raised per meter and kind, readings stored in the last hour per meter. The gateway's poll latency, retries
and errors live in its own ``CollectorRegistry`` (passed to ``create_app(registry=...)``); ``metrics_text``
exposes both in one answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from meterbridge.sinks.history import History
from meterbridge.sinks.store import Store

__all__ = ["StoreCollector", "metrics_text"]


class StoreCollector(Collector):
    """Gauges computed from the store when Prometheus scrapes."""

    def __init__(self, store: Store, history: History) -> None:
        self._store = store
        self._history = history

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        outbox = GaugeMetricFamily(
            "meterbridge_outbox_depth", "Readings waiting for a sink to confirm them", labels=["sink"]
        )
        for sink in self._store.sinks():
            outbox.add_metric([sink], self._store.outbox_depth(sink))
        yield outbox
        last_seen = GaugeMetricFamily(
            "meterbridge_meter_last_seen_timestamp_seconds",
            "When each meter was last read (Unix time)",
            labels=["meter"],
        )
        age = GaugeMetricFamily(
            "meterbridge_meter_last_seen_age_seconds",
            "Seconds since each meter was last read",
            labels=["meter"],
        )
        now = time.time()
        for meter in self._store.meters():
            if meter.last_seen is not None:
                ts = meter.last_seen.timestamp()
                last_seen.add_metric([meter.id], ts)
                age.add_metric([meter.id], max(0.0, now - ts))
        yield last_seen
        yield age
        events = GaugeMetricFamily(
            "meterbridge_meter_events", "Quality events raised, per meter and kind", labels=["meter", "kind"]
        )
        for meter_id, kinds in sorted(self._history.event_counts().items()):
            for kind, count in sorted(kinds.items()):
                events.add_metric([meter_id, kind], count)
        yield events
        active = GaugeMetricFamily(
            "meterbridge_meter_active_events",
            "Quality events raised and not cleared",
            labels=["meter", "kind"],
        )
        counted: dict[tuple[str, str], int] = {}
        for event in self._history.active_events():
            counted[(event.meter_id, event.kind)] = counted.get((event.meter_id, event.kind), 0) + 1
        for (meter_id, kind), count in sorted(counted.items()):
            active.add_metric([meter_id, kind], count)
        yield active
        recent = GaugeMetricFamily(
            "meterbridge_meter_readings_last_hour", "Readings stored in the last hour", labels=["meter"]
        )
        for meter_id, count in sorted(self._history.reading_counts(int((now - 3600) * 1000)).items()):
            recent.add_metric([meter_id], count)
        yield recent


def metrics_text(store_registry: CollectorRegistry, gateway: CollectorRegistry | None) -> tuple[bytes, str]:
    """The exposition text of the store's figures followed by the gateway's registry (if any)."""
    body = generate_latest(store_registry)
    if gateway is not None:
        body += generate_latest(gateway)
    return body, CONTENT_TYPE_LATEST
