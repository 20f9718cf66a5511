"""End to end with the simulators as separate processes: the configured sources read a simulated E450
(optical port, encrypted CII pushes) and an M-Bus of ten meters; `meterbridge run` as a real process is
killed with SIGKILL mid-run and restarted, and every reading it had stored reaches MQTT."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from meterbridge.cli.demo import DEMO_GAK, DEMO_KEY, demo_config
from meterbridge.gateway.config import parse_config
from meterbridge.gateway.runner import run_gateway
from meterbridge.readings import Quality
from meterbridge.sinks.store import open_store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"simulator exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"simulator on port {port} did not listen within {timeout} s")


@pytest.fixture(scope="module")
def simulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    ports = {"optical": _free_port(), "push": _free_port(), "mbus": _free_port(), "wrapper": _free_port()}
    log = (tmp_path_factory.mktemp("sim") / "sim.log").open("wb")
    sim = [sys.executable, "-m", "meterbridge", "simulate"]
    procs = [
        subprocess.Popen(
            [*sim, "e450", "--tcp", f"127.0.0.1:{ports['optical']}", "--seed", "1"], stdout=log, stderr=log
        ),
        subprocess.Popen(
            [
                *sim,
                "e450",
                "--tcp",
                f"127.0.0.1:{ports['push']}",
                "--cii",
                "--key",
                DEMO_KEY,
                "--auth-key",
                DEMO_GAK,
                "--push-interval",
                "1",
                "--seed",
                "2",
            ],
            stdout=log,
            stderr=log,
        ),
        subprocess.Popen(
            [*sim, "mbus", "--tcp", f"127.0.0.1:{ports['mbus']}", "--meters", "10"], stdout=log, stderr=log
        ),
        subprocess.Popen(
            [*sim, "e450", "--wrapper-tcp", f"127.0.0.1:{ports['wrapper']}", "--seed", "3"],
            stdout=log,
            stderr=log,
        ),
    ]
    try:
        for proc, port in zip(procs, ports.values(), strict=True):
            _wait_port(port, proc)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


async def test_every_source_kind_reads_its_simulator(simulators: dict[str, int], tmp_path: Path) -> None:
    store_path = tmp_path / "e2e.sqlite"
    text = demo_config(
        optical=simulators["optical"],
        push=simulators["push"],
        mbus=simulators["mbus"],
        store=str(store_path),
        mqtt=None,
        web_port=8450,
        interval=2,
    )
    dlms = f"""\
  - id: e450-g3
    protocol: dlms
    transport: tcp://127.0.0.1:{simulators["wrapper"]}
    wrapper: true
    interval: 2
    objects: ["1-0:1.8.0.255", "1-0:32.7.0.255", "1-0:14.7.0.255"]
"""
    config = parse_config(text.replace("buses:\n", dlms + "buses:\n", 1))
    store = open_store(str(store_path))
    stop = asyncio.Event()
    task = asyncio.create_task(run_gateway(config, stop, store=store))

    def done() -> bool:
        meters = {m.id: m for m in store.meters()}
        mbus = [m for m in meters.values() if m.protocol == "mbus" and m.last_seen is not None]
        return (
            len(mbus) >= 10
            and bool(store.readings("e450-optical", limit=1))
            and len(store.readings("e450-cii")) >= 20
            and len(store.readings("e450-g3")) >= 6
        )

    try:
        async with asyncio.timeout(90):
            while not done():
                assert not task.done(), task.exception()
                await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task
    optical = store.latest("e450-optical")
    assert "1-0:1.8.0.255" in optical and optical["1-0:1.8.0.255"].ok
    cii = store.readings("e450-cii")
    # with both keys every push is verified: nothing is marked unauthenticated
    assert all(not (r.quality & Quality.UNAUTHENTICATED) for r in cii)
    currents = [r for r in cii if r.key_text == "1-0:31.7.0.255"]
    assert currents and all(r.ok and r.unit == "A" and float(r.value) < 100 for r in currents)  # type: ignore[arg-type]
    energies = [r.value for r in cii if r.key_text.endswith(":1.8.0.255")]
    assert energies == sorted(energies)  # type: ignore[type-var]
    g3 = store.latest("e450-g3")
    assert set(g3) == {"1-0:1.8.0.255", "1-0:32.7.0.255", "1-0:14.7.0.255"}
    assert g3["1-0:32.7.0.255"].unit == "V" and 200 < float(g3["1-0:32.7.0.255"].value) < 260  # type: ignore[arg-type]
    bus = [m for m in store.meters() if m.protocol == "mbus"]
    assert len(bus) == 10 and all(m.manufacturer and m.serial for m in bus)
    assert all(store.latest(m.id) for m in bus)
    store.close()


def _count(path: Path, sql: str) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def _run(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "meterbridge", "run", "--config", str(config), "--no-web"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_meterbridge_run_killed_and_restarted_loses_no_stored_reading(
    simulators: dict[str, int],
    tmp_path: Path,
    mqtt_broker,  # type: ignore[no-untyped-def]
) -> None:
    host, port = mqtt_broker
    gateway = f"e2e{uuid.uuid4().hex[:8]}"
    store = tmp_path / "run.sqlite"
    base = demo_config(
        optical=simulators["optical"],
        push=simulators["push"],
        mbus=simulators["mbus"],
        store=str(store),
        mqtt=None,
        web_port=8450,
        interval=1,
    ).replace("name: demo", f"name: {gateway}")
    dead = _free_port()  # nothing listens here: the broker is "down" in the first run
    config = tmp_path / "gw.yaml"
    config.write_text(
        base.replace("sinks: {}", f"sinks:\n  mqtt:\n    url: mqtt://127.0.0.1:{dead}\n    discovery: false")
    )

    first = _run(config)
    deadline = time.monotonic() + 90
    try:
        while _count(store, "SELECT count(*) FROM readings") < 300:
            assert first.poll() is None, first.stderr.read().decode() if first.stderr else ""
            assert time.monotonic() < deadline, "the gateway stored too little"
            time.sleep(0.2)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        if first.stderr:
            first.stderr.close()
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = conn.execute("SELECT id FROM readings ORDER BY id").fetchall()
    conn.close()
    wanted = {row[0] for row in stored}
    assert sorted(wanted) == list(range(1, len(wanted) + 1))
    assert _count(store, "SELECT count(*) FROM outbox") == len(wanted)

    received: set[int] = set()
    lock = threading.Lock()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with lock:
            received.add(int(json.loads(message.payload)["seq"]))

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sub-{gateway}")
    sub.on_message = on_message
    sub.connect(host, port)
    sub.subscribe(f"meterbridge/{gateway}/readings/#", qos=1)
    sub.loop_start()
    config.write_text(
        base.replace("sinks: {}", f"sinks:\n  mqtt:\n    url: mqtt://{host}:{port}\n    discovery: false")
    )
    time.sleep(0.5)
    second = _run(config)
    try:
        deadline = time.monotonic() + 120
        while True:
            with lock:
                if wanted <= received:
                    break
            assert second.poll() is None, second.stderr.read().decode() if second.stderr else ""
            assert time.monotonic() < deadline, f"{len(wanted - received)} stored readings never reached MQTT"
            time.sleep(0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.wait()
        if second.stderr:
            second.stderr.close()
        sub.loop_stop()
        sub.disconnect()
    assert second.returncode == 0  # SIGTERM is a clean stop
