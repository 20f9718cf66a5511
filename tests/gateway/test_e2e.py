"""End to end with the simulators as separate processes: the configured sources read a simulated E450
(optical port, encrypted CII pushes) and an M-Bus of ten meters; `meterbridge run` as a real process is
killed with SIGKILL mid-run and restarted, and every reading it had stored reaches MQTT."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import paho.mqtt.client as paho
import pytest

from meterbridge.cli.demo import demo_config, demo_simulators
from meterbridge.gateway.config import parse_config
from meterbridge.gateway.runner import run_gateway
from meterbridge.readings import Quality
from meterbridge.sinks.store import open_store

from .conftest import count_rows, log_tail, refusing_socket, stop_child  # type: ignore[import-not-found]

_ANNOUNCED = re.compile(rb"on tcp://([0-9.]+):([0-9]+)")


def _start_simulator(
    args: list[str], log: BinaryIO, timeout: float = 60.0
) -> tuple[subprocess.Popen[bytes], int, threading.Thread]:
    """Start ``meterbridge simulate ARGS`` on port 0 and return it with the port it announced once it
    listens (no free-port guess that another process can take first). The rest of its stderr is copied
    to ``log`` by a thread, so a full pipe never blocks it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "meterbridge", "simulate", *args],
        stdout=log,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = proc.stderr
    found: list[int] = []
    announced = threading.Event()

    def copy() -> None:
        for line in stderr:
            log.write(line)
            log.flush()
            match = _ANNOUNCED.search(line)
            if match and not found:
                found.append(int(match.group(2)))
                announced.set()
        announced.set()  # EOF: the simulator exited

    copier = threading.Thread(target=copy, name=f"sim-stderr-{proc.pid}", daemon=True)
    copier.start()
    if not announced.wait(timeout) or not found:
        proc.kill()
        proc.wait()
        copier.join(10)
        stderr.close()
        pytest.fail(f"simulator {args} did not announce its port within {timeout} s (exit {proc.returncode})")
    return proc, found[0], copier


@pytest.fixture(scope="module")
def simulators(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    log = (tmp_path_factory.mktemp("sim") / "sim.log").open("wb")
    kinds = {
        **demo_simulators(dict.fromkeys(("optical", "push", "mbus"), "127.0.0.1:0"), push_interval=1),
        "wrapper": ["e450", "--wrapper-tcp", "127.0.0.1:0", "--seed", "3"],
    }
    procs: list[subprocess.Popen[bytes]] = []
    copiers: list[threading.Thread] = []
    ports: dict[str, int] = {}
    try:
        for name, args in kinds.items():
            proc, ports[name], copier = _start_simulator(args, log)
            procs.append(proc)
            copiers.append(copier)
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
        for copier in copiers:  # they end at the simulators' EOF
            copier.join(10)
        for proc in procs:
            if proc.stderr:
                proc.stderr.close()
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

    def missing() -> list[str]:
        """What the store does not hold yet (empty: done)."""
        mbus = [m for m in store.meters() if m.protocol == "mbus" and m.last_seen is not None]
        counts = {
            "M-Bus meters seen": (len(mbus), 10),
            "e450-optical readings": (len(store.readings("e450-optical", limit=1)), 1),
            "e450-cii readings": (len(store.readings("e450-cii")), 20),
            "e450-g3 readings": (len(store.readings("e450-g3")), 6),
        }
        return [f"{what}: {got} of {want}" for what, (got, want) in counts.items() if got < want]

    waited_out: list[str] = []
    try:
        try:
            async with asyncio.timeout(180):
                while missing():
                    assert not task.done(), task.exception()
                    await asyncio.sleep(0.2)
        except TimeoutError:
            waited_out = missing()
    finally:
        stop.set()
        # the gateway must stop when asked; if it does not, say where it hangs instead of hanging
        finished, _ = await asyncio.wait({task}, timeout=60)
        if not finished:
            stacks = []
            for other in asyncio.all_tasks():
                if other is not asyncio.current_task():
                    frames = other.get_stack(limit=8)
                    where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
                    stacks.append(f"{other.get_name()}: {where}")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            pytest.fail("run_gateway did not stop within 60 s of stop.set(); tasks:\n" + "\n".join(stacks))
        task.result()
    assert not waited_out, f"after 180 s the gateway still lacks: {waited_out}"
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


def _run(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``meterbridge run`` with its stderr in ``log`` (a pipe nobody reads would fill up with the log of a
    long run against a dead broker and block the gateway)."""
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "meterbridge", "run", "--config", str(config), "--no-web"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def test_meterbridge_run_killed_and_restarted_loses_no_stored_reading(
    simulators: dict[str, int],
    tmp_path: Path,
    mosquitto_factory,  # type: ignore[no-untyped-def]
) -> None:
    # a private broker with a large queue for the subscriber: a slow (loaded) subscriber must not lose
    # messages to the system broker's 1000-message queue limit (see test_crash.py)
    broker = mosquitto_factory(persistence=False)
    host, port = broker.host, broker.port
    log = tmp_path / "gateway.log"
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
    config = tmp_path / "gw.yaml"
    # the broker is "down" in the first run: a port held bound without listening refuses connections
    with refusing_socket() as refusing:
        dead = int(refusing.getsockname()[1])
        config.write_text(
            base.replace(
                "sinks: {}", f"sinks:\n  mqtt:\n    url: mqtt://127.0.0.1:{dead}\n    discovery: false"
            )
        )
        first = _run(config, log)
        deadline = time.monotonic() + 120
        try:
            while count_rows(store, "SELECT count(*) FROM readings") < 300:
                assert first.poll() is None, log_tail(log)
                assert time.monotonic() < deadline, f"the gateway stored too little:\n{log_tail(log)}"
                time.sleep(0.2)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = conn.execute("SELECT id FROM readings ORDER BY id").fetchall()
    conn.close()
    wanted = {row[0] for row in stored}
    assert sorted(wanted) == list(range(1, len(wanted) + 1))
    assert count_rows(store, "SELECT count(*) FROM outbox") == len(wanted)

    received: set[int] = set()
    lock = threading.Lock()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with lock:
            received.add(int(json.loads(message.payload)["seq"]))

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sub-{gateway}")
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(host, port)
    sub.subscribe(f"meterbridge/{gateway}/readings/#", qos=1)
    sub.loop_start()
    config.write_text(
        base.replace("sinks: {}", f"sinks:\n  mqtt:\n    url: mqtt://{host}:{port}\n    discovery: false")
    )
    try:
        assert subscribed.wait(30), "the subscription was not acknowledged"
        second = _run(config, log)
        try:
            deadline = time.monotonic() + 120
            while True:
                with lock:
                    if wanted <= received:
                        break
                assert second.poll() is None, log_tail(log)
                assert time.monotonic() < deadline, (
                    f"{len(wanted - received)} stored readings never reached MQTT:\n{log_tail(log)}"
                )
                time.sleep(0.2)
        finally:
            stop_child(second, 30)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert second.returncode == 0, log_tail(log)  # SIGTERM is a clean stop
