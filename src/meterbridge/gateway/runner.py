"""Assembling a gateway from its configuration: store, validator, sources, sinks; and running it.

``run_gateway(config, stop)`` is what ``meterbridge run`` and ``meterbridge demo`` call. It opens the store
named in ``store.url``, builds one source per configured meter and bus (``sources.build_sources``), the
MQTT sink when ``sinks.mqtt`` is configured, and runs the pipeline until ``stop`` is set; with ``metrics``
(a ``gateway.metrics.GatewayMetrics``) it records poll latency and errors and the readings stored. The web dashboard is
started by the command line (the gateway layer does not import the web layer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from meterbridge.gateway.config import GatewayConfig, RegisterOverride
from meterbridge.gateway.metrics import GatewayMetrics
from meterbridge.gateway.pipeline import Gateway, GatewayStats
from meterbridge.gateway.sources import Source, build_sources
from meterbridge.gateway.validate import Validator
from meterbridge.sinks.base import Sink
from meterbridge.sinks.store import MeterInfo, Store, open_store

__all__ = ["build_sinks", "build_validator", "open_configured_store", "run_gateway"]

log = logging.getLogger(__name__)


def open_configured_store(config: GatewayConfig) -> Store:
    """The store of ``store.url`` (SQLite with the configured ``synchronous`` level, or PostgreSQL)."""
    url = config.store.url
    if url.startswith(("postgresql://", "postgres://")):
        return open_store(url)
    from meterbridge.sinks.sqlite_store import SqliteStore

    path = url[len("sqlite://") :] if url.startswith("sqlite://") else url
    if url.startswith("sqlite://") and path.startswith("/"):
        path = path[1:]
    return SqliteStore(path or ":memory:", synchronous=config.store.synchronous)


def build_validator(config: GatewayConfig) -> Validator:
    overrides: dict[str, dict[str, RegisterOverride]] = {}
    for meter in config.meters:
        if meter.registers:
            regs = dict(meter.registers)
            if meter.protocol == "push":  # the push decoder applies scaler and unit itself
                regs = {k: o.model_copy(update={"scaler": None}) for k, o in regs.items()}
            overrides[meter.id] = regs
    for bus in config.buses:
        for bus_meter in bus.meters:
            if bus_meter.id and bus_meter.registers:
                overrides[bus_meter.id] = dict(bus_meter.registers)
    return Validator(config.quality, overrides)


def configured_meters(config: GatewayConfig) -> list[MeterInfo]:
    """The meters the configuration names (a bus's scan adds the others when it finds them)."""
    infos = [
        MeterInfo(id=m.id, name=m.name, protocol=m.protocol, address=m.transport, kind="electricity")
        for m in config.meters
    ]
    for bus in config.buses:
        for bm in bus.meters:
            if bm.id:
                address = str(bm.address) if bm.address is not None else bm.secondary
                infos.append(MeterInfo(id=bm.id, name=bm.name, protocol="mbus", address=address))
    return infos


def build_sinks(config: GatewayConfig, **mqtt_options: Any) -> list[Sink]:
    sinks: list[Sink] = []
    if config.sinks.mqtt is not None:
        from meterbridge.sinks.mqtt import MqttSink

        # the configured meters: removal from Home Assistant, expire_after per meter
        mqtt_options.setdefault("config", config)
        sinks.append(MqttSink.from_config(config.sinks.mqtt, gateway_id=config.name, **mqtt_options))
    return sinks


async def run_gateway(
    config: GatewayConfig,
    stop: asyncio.Event,
    *,
    store: Store | None = None,
    sources: Sequence[Source] | None = None,
    sinks: Sequence[Sink] | None = None,
    metrics: GatewayMetrics | None = None,
) -> GatewayStats:
    """Run the configured gateway until ``stop`` is set; return its counters. ``metrics``: where the
    sources record their polls and the pipeline the readings it stored (``cli/run.py`` exposes its
    registry on the dashboard's ``/metrics``)."""
    own_store = store is None
    the_store = store if store is not None else await asyncio.to_thread(open_configured_store, config)
    try:
        for meter in configured_meters(config):
            await asyncio.to_thread(the_store.upsert_meter, meter)
        the_sources = list(sources) if sources is not None else build_sources(config)
        the_sinks = list(sinks) if sinks is not None else build_sinks(config)
        if metrics is not None:
            for source in the_sources:
                if hasattr(source, "metrics"):  # polled sources and buses; listeners do not poll
                    source.metrics = metrics
        gateway = Gateway(
            the_store,
            the_sources,
            the_sinks,
            build_validator(config),
            retention_days=config.store.retention_days,
            metrics=metrics,
        )
        log.info(
            "gateway %s: %d sources, sinks %s, store %s",
            config.name,
            len(the_sources),
            [s.name for s in the_sinks] or "none",
            the_store,
        )
        await gateway.run(stop)
        return gateway.stats
    finally:
        if own_store:
            await asyncio.to_thread(the_store.close)
