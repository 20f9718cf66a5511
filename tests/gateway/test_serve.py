"""``cli.run.serve_config``: the gateway with its web dashboard, configured by the ``web:`` section."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from meterbridge.cli.run import serve_config
from meterbridge.gateway.config import GatewayConfig, local_timezone_name, parse_config
from meterbridge.sinks.store import MeterInfo, open_store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def _serving(config: GatewayConfig) -> AsyncIterator[httpx.AsyncClient]:
    stop = asyncio.Event()
    task = asyncio.create_task(serve_config(config, stop))
    base = f"http://127.0.0.1:{config.web.port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            async with asyncio.timeout(20):
                while True:
                    assert not task.done(), task.exception()
                    try:
                        if (await client.get("/healthz")).status_code < 500:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
            yield client
    finally:
        stop.set()
        await task


def _web_config(tmp_path: Path, web: str, meters: str = "") -> GatewayConfig:
    return parse_config(
        f"""\
{meters}store:
  url: {tmp_path / "g.sqlite"}
web:
  port: {_free_port()}
{web}"""
    )


async def test_web_timezone_and_reports_dir_reach_the_dashboard(tmp_path: Path) -> None:
    reports = tmp_path / "my-reports"
    reports.mkdir()
    (reports / "check-2026-11-28.json").write_text(json.dumps({"ok": True}))
    config = _web_config(tmp_path, f"  timezone: Pacific/Auckland\n  reports_dir: {reports}\n")
    with open_store(config.store.url) as store:
        store.upsert_meter(MeterInfo(id="m1", name="House", protocol="optical"))
    async with _serving(config) as web:
        listed = (await web.get("/api/reports")).json()
        assert "check-2026-11-28.json" in json.dumps(listed)
        energy = await web.get("/api/meters/m1/energy")
        assert energy.status_code == 200, energy.text
        assert energy.json()["tz"] == "Pacific/Auckland"


async def test_web_defaults_system_zone_and_no_reports_page_when_null(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "America/Halifax")
    assert local_timezone_name() == "America/Halifax"
    config = _web_config(tmp_path, "  reports_dir: null\n")
    assert config.web.timezone is None and config.web.zone() == "America/Halifax"
    with open_store(config.store.url) as store:
        store.upsert_meter(MeterInfo(id="m1", protocol="optical"))
    async with _serving(config) as web:
        assert (await web.get("/api/meters/m1/energy")).json()["tz"] == "America/Halifax"
        assert "check" not in json.dumps((await web.get("/api/reports")).json())


def test_local_timezone_name_falls_back_to_a_known_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Not/AZone")
    name = local_timezone_name()  # the system's zone from /etc, or UTC
    from zoneinfo import ZoneInfo

    assert ZoneInfo(name) is not None and name != "Not/AZone"
    assert parse_config("web: {}\n").web.reports_dir == "var/reports"


def test_bad_web_timezone_is_a_config_error() -> None:
    from meterbridge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"web\.timezone: 'Mars/Olympus' is not an IANA time zone"):
        parse_config("web:\n  timezone: Mars/Olympus\n")


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_poll_latency_errors_and_readings_stored(tmp_path: Path) -> None:
    from meterbridge.simulator.e450 import E450Simulator
    from meterbridge.transports import RealClock, serve_tcp

    sim = E450Simulator(clock=RealClock(), seed=1)
    with socket.socket() as refusing:  # bound, not listening: connections are refused
        refusing.bind(("127.0.0.1", 0))
        dead = refusing.getsockname()[1]
        async with await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0) as server:
            meters = f"""\
meters:
  - id: g3
    protocol: dlms
    transport: tcp://127.0.0.1:{server.port}
    wrapper: true
    interval: 0.2
    objects: ["1-0:1.8.0.255", "1-0:32.7.0.255"]
  - id: gone
    protocol: dlms
    transport: tcp://127.0.0.1:{dead}
    wrapper: true
    interval: 0.2
"""
            config = _web_config(tmp_path, "  timezone: UTC\n", meters)
            async with _serving(config) as web:
                async with asyncio.timeout(30):
                    while True:
                        samples = _samples((await web.get("/metrics")).text)
                        polls = samples.get(
                            ("meterbridge_gateway_poll_seconds_count", (("source", "g3"),)), 0
                        )
                        failed = {
                            dict(labels)["kind"]: value
                            for (name, labels), value in samples.items()
                            if name == "meterbridge_gateway_poll_errors_total"
                            and ("source", "gone") in labels
                        }
                        errors = sum(failed.values())
                        stored = samples.get(("meterbridge_gateway_readings_stored_total", ()), 0)
                        if polls >= 3 and errors >= 2 and stored >= 4:  # two registers a poll
                            break
                        await asyncio.sleep(0.2)
                assert samples[("meterbridge_gateway_poll_seconds_sum", (("source", "g3"),))] > 0
                # the refused connection is counted by the error's class (the transport's), never its text
                assert failed and all(kind.isidentifier() for kind in failed), failed
                assert not any(
                    name == "meterbridge_gateway_poll_errors_total" and ("source", "g3") in labels
                    for name, labels in samples
                )
                # the web layer's own figures are still there
                assert any(name.startswith("meterbridge_meter_") for name, _ in samples)
