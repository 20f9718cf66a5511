"""kill -9 of a real gateway process mid-run, broker unreachable; restart with the broker: every reading
that was stored before the kill reaches MQTT, in order per meter, and the outbox drains to zero."""

from __future__ import annotations

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
from pathlib import Path

import paho.mqtt.client as paho
import pytest

CHILD = Path(__file__).with_name("crash_child.py")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stored(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, meter_id, value FROM readings ORDER BY id").fetchall()
    finally:
        conn.close()


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


def _spawn(store: Path, gateway_id: str, broker: str, start: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(store), gateway_id, broker, str(start)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.fail(
                f"gateway process exited ({proc.returncode}) while waiting for {what}:\n{err[-3000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_kill_9_and_restart_lose_no_stored_reading(tmp_path: Path, mqtt_broker) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "gw.sqlite"
    gateway_id = f"crash{uuid.uuid4().hex[:8]}"

    # 1. run with the broker unreachable: readings pile up in the outbox; kill -9 mid-stream
    first = _spawn(store, gateway_id, f"mqtt://127.0.0.1:{_closed_port()}", 1)
    try:
        _wait(
            lambda: _count(store, "SELECT count(*) FROM readings") >= 3000, 60, "3000 stored readings", first
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        if first.stderr:
            first.stderr.close()
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    before = _stored(store)
    ids = [row[0] for row in before]
    assert ids == list(range(1, len(ids) + 1))  # no hole, no half-written batch
    assert _count(store, "SELECT count(*) FROM outbox WHERE sink = 'mqtt'") == len(before)

    # 2. a subscriber on the fleet stream, then restart with the broker answering
    host, port = mqtt_broker
    received: list[dict[str, object]] = []
    lock = threading.Lock()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with lock:
            received.append(json.loads(message.payload))

    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sub-{gateway_id}")
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect(host, port)
    sub.subscribe(f"meterbridge/{gateway_id}/readings/#", qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        wanted = {row[0] for row in before}
        second = _spawn(store, gateway_id, f"mqtt://{host}:{port}", 10**9)
        try:

            def all_arrived() -> bool:
                with lock:
                    return wanted <= {int(m["seq"]) for m in received}  # type: ignore[call-overload]

            _wait(all_arrived, 120, f"the {len(wanted)} readings stored before the kill on MQTT", second)
            # confirmed after the PUBACKs: nothing stored before the kill is still waiting
            last = max(wanted)
            _wait(
                lambda: _count(store, f"SELECT count(*) FROM outbox WHERE reading_id <= {last}") == 0,
                30,
                "the outbox to drain",
                second,
            )
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(20)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait()
            if second.stderr:
                second.stderr.close()
    finally:
        sub.loop_stop()
        sub.disconnect()

    with lock:
        got = [m for m in received if int(m["seq"]) in wanted]  # type: ignore[call-overload]
    by_seq = {int(m["seq"]): m for m in got}  # type: ignore[call-overload]
    for seq, meter, value in before:  # the exact stored value, for the right meter
        assert by_seq[seq]["meter"] == meter and by_seq[seq]["value"] == value
    for meter in {row[1] for row in before}:  # drained in order, per meter
        seqs = [int(m["seq"]) for m in got if m["meter"] == meter]  # type: ignore[call-overload]
        firsts = list(dict.fromkeys(seqs))
        assert firsts == sorted(firsts)
