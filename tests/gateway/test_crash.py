"""kill -9 of a real gateway process mid-run, broker unreachable; restart with the broker: every reading
that was stored before the kill reaches MQTT, in order per meter, and the outbox drains to zero.

The broker is a private Mosquitto whose queue for a slow subscriber is large (the conftest factory sets
``max_queued_messages``): the restarted gateway drains thousands of stored readings at full speed, and the
system broker's default queue (1000 messages) drops what the test's subscriber has not taken yet when the
machine is loaded ("Outgoing messages are being dropped for client sub-crash..."), which is the broker's
policy, not a loss by the gateway. The unreachable broker of the first run is a port held bound without
listening, so no other process can take it meanwhile. Deadlines are generous limits for conditions, not
measurements.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from .conftest import count_rows, log_tail, refusing_socket, stop_child  # type: ignore[import-not-found]

CHILD = Path(__file__).with_name("crash_child.py")


def _stored(path: Path) -> list[tuple[int, str, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT id, meter_id, value FROM readings ORDER BY id").fetchall()
    finally:
        conn.close()


def _spawn(store: Path, gateway_id: str, broker: str, start: int, log: Path) -> subprocess.Popen[bytes]:
    """The gateway child; its stderr goes to ``log`` (a pipe nobody reads would fill up and block the
    child's logging, and so the child, on a slow run)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as err:
        return subprocess.Popen(
            [sys.executable, str(CHILD), str(store), gateway_id, broker, str(start)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=env,
        )


def _wait(condition, timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(
                f"gateway process exited ({proc.returncode}) while waiting for {what}:\n{log_tail(log)}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; gateway stderr:\n{log_tail(log)}")
        time.sleep(0.05)


def test_kill_9_and_restart_lose_no_stored_reading(tmp_path: Path, mosquitto_factory) -> None:  # type: ignore[no-untyped-def]
    store = tmp_path / "gw.sqlite"
    gateway_id = f"crash{uuid.uuid4().hex[:8]}"
    log = tmp_path / "gateway.log"

    # 1. run with the broker unreachable: readings pile up in the outbox; kill -9 mid-stream
    with refusing_socket() as refusing:
        dead = int(refusing.getsockname()[1])
        first = _spawn(store, gateway_id, f"mqtt://127.0.0.1:{dead}", 1, log)
        try:
            _wait(
                lambda: count_rows(store, "SELECT count(*) FROM readings") >= 3000,
                90,
                "3000 stored readings",
                first,
                log,
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
    conn = sqlite3.connect(store)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    before = _stored(store)
    ids = [row[0] for row in before]
    assert ids == list(range(1, len(ids) + 1))  # no hole, no half-written batch
    assert count_rows(store, "SELECT count(*) FROM outbox WHERE sink = 'mqtt'") == len(before)

    # 2. a subscriber on the fleet stream, then restart with the broker answering
    broker = mosquitto_factory(persistence=False)
    host, port = broker.host, broker.port
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
        assert subscribed.wait(30), "the subscription was not acknowledged"
        wanted = {row[0] for row in before}
        second = _spawn(store, gateway_id, f"mqtt://{host}:{port}", 10**9, log)
        try:

            def all_arrived() -> bool:
                with lock:
                    return wanted <= {int(m["seq"]) for m in received}  # type: ignore[call-overload]

            _wait(all_arrived, 150, f"the {len(wanted)} readings stored before the kill on MQTT", second, log)
            # confirmed after the PUBACKs: nothing stored before the kill is still waiting
            last = max(wanted)
            _wait(
                lambda: count_rows(store, f"SELECT count(*) FROM outbox WHERE reading_id <= {last}") == 0,
                30,
                "the outbox to drain",
                second,
                log,
            )
        finally:
            stop_child(second, 20)
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
