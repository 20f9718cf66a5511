"""Readings per second through the gateway pipeline (validate -> SQLite -> MQTT QoS 1), side by side with a
bare paho-mqtt loop publishing the same payloads at the same QoS, and peak memory with 1,000 meters.

    .venv/bin/python bench/pipeline.py [--broker mqtt://127.0.0.1:1883] [--meters 1000] [--registers 10]
                                       [--rounds 5] [--repeat 2]

Each of ``--meters`` simulated meters is a source that yields ``--registers`` readings (energies, powers,
voltages, currents, frequency, power factor, THD: the E450's push list) per round, ``--rounds`` rounds.
Every reading goes through the real pipeline: the validator (plausibility, monotonic counters, quality
bands), ``SqliteStore.add`` (WAL, readings + outbox in one transaction) and ``MqttSink`` (fleet stream,
QoS 1; a reading is confirmed in the outbox only after its PUBACK). The time runs until the sink has
confirmed every reading (its own count, read without touching the store; the outbox is then checked empty).

The reference publishes the same fleet-stream payloads (``mqtt_topics.reading_payload`` of each reading, to
the same topics, encoded before its clock starts) from one paho-mqtt 2 client with ``loop_start`` at QoS 1
and stops when every PUBACK is in. It speaks MQTT 5, as ``MqttSink`` does with Mosquitto (paho parses
reason codes and properties of every MQTT 5 PUBACK, which 3.1.1 does not have); a 3.1.1 run of the same
loop is shown for information.
Every run is a child process of this script (so that each one's peak RSS is its own) against the same
broker, in the same invocation; the runs alternate (paho, ours, ours with HA, paho, ...) and the best of
``--repeat`` counts, since the machine is shared. Readings per CPU second (user + system time of each
process, all its threads) are printed too: they depend much less on what else the machine runs. A third row runs our pipeline with Home Assistant discovery on (state
topics and discovery payloads on top of the stream), and a fourth without any sink (validate + SQLite
only), for information. The peak RSS of the pipeline runs is the memory of a gateway with 1,000 meters.

Every run publishes under one topic root of this invocation, ``mbbench-<uuid>/meterbridge`` and
``mbbench-<uuid>/homeassistant``, never the real ``meterbridge/`` and ``homeassistant/`` (the broker may be
the one of a Home Assistant); at the end every retained message under ``mbbench-<uuid>/#`` is cleared
(an empty retained payload on each), also when a run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

REGISTERS = [
    ("1-0:1.8.0.255", "Wh", "counter"),
    ("1-0:2.8.0.255", "Wh", "counter"),
    ("1-0:1.7.0.255", "W", Decimal("1234.5")),
    ("1-0:32.7.0.255", "V", Decimal("230.4")),
    ("1-0:52.7.0.255", "V", Decimal("231.1")),
    ("1-0:72.7.0.255", "V", Decimal("229.8")),
    ("1-0:31.7.0.255", "A", Decimal("5.36")),
    ("1-0:14.7.0.255", "Hz", Decimal("50.01")),
    ("1-0:13.7.0.255", None, Decimal("0.97")),
    ("1-0:32.7.124.255", "%", Decimal("2.1")),
]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def make_readings(meter: int, registers: int, round_: int) -> list[object]:
    from meterbridge.readings import Reading

    out: list[object] = []
    when = T0 + timedelta(seconds=10 * round_)
    for i in range(registers):
        code, unit, value = REGISTERS[i % len(REGISTERS)]
        v = 1_000_000 + meter * 1000 + round_ * 7 + i if value == "counter" else value
        out.append(Reading(f"meter{meter:04d}", _obis(code), v, unit, when))
    return out


_CODES: dict[str, object] = {}


def _obis(code: str) -> object:
    from meterbridge.obis import ObisCode

    if code not in _CODES:
        _CODES[code] = ObisCode.parse(code)
    return _CODES[code]


class SimulatedMeter:
    """A source yielding ``rounds`` rounds of readings (the bench's stand-in for a driver)."""

    def __init__(self, index: int, registers: int, rounds: int) -> None:
        self.name = f"meter{index:04d}"
        self.index = index
        self.registers = registers
        self.rounds = [make_readings(index, registers, r) for r in range(rounds)]  # built before the clock

    async def stream(self) -> AsyncIterator[object]:
        for items in self.rounds:
            for item in items:
                yield item
            await asyncio.sleep(0)
        await asyncio.Event().wait()


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (the broker's is in neither run)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- child: our pipeline


async def run_pipeline(
    broker: str,
    meters: int,
    registers: int,
    rounds: int,
    discovery: bool,
    mqtt: bool = True,
    topic_root: str = "mbbench",
) -> dict[str, float]:
    from meterbridge.gateway.config import MqttConfig
    from meterbridge.gateway.pipeline import Gateway
    from meterbridge.sinks.mqtt import MqttSink
    from meterbridge.sinks.sqlite_store import SqliteStore

    total = meters * registers * rounds
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "bench.sqlite")
        gateway_id = f"bench{uuid.uuid4().hex[:6]}"
        sinks = (
            [
                MqttSink.from_config(
                    MqttConfig(
                        url=broker,
                        discovery=discovery,
                        base_topic=f"{topic_root}/meterbridge",
                        discovery_prefix=f"{topic_root}/homeassistant",
                    ),
                    gateway_id=gateway_id,
                )
            ]
            if mqtt
            else []
        )
        sources = [SimulatedMeter(i, registers, rounds) for i in range(meters)]
        gw = Gateway(store, sources, sinks)  # type: ignore[arg-type]
        stop = asyncio.Event()
        start, cpu0 = time.perf_counter(), cpu_seconds()
        task = asyncio.create_task(gw.run(stop))
        # done when every reading is stored and (with a sink) confirmed: the sink's own count, so that
        # waiting costs nothing (a count(*) of the outbox every few ms would compete with the gateway)
        while gw.stats.readings < total or (sinks and sinks[0].confirmed < total):
            if task.done():
                task.result()
                raise RuntimeError("gateway stopped early")
            await asyncio.sleep(0.002)
        elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
        left = store.outbox_depth()
        stop.set()
        await task
        if left:
            raise RuntimeError(f"{left} outbox entries left after the sink confirmed {total}")
        stored = len(store.readings(limit=total + 1))
        store.close()
    if stored != total:
        raise RuntimeError(f"stored {stored} readings, expected {total}")
    return {
        "readings": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "cpu_rate": total / cpu,
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- child: bare paho loop


def run_paho(
    broker: str, meters: int, registers: int, rounds: int, mqtt5: bool = True, topic_root: str = "mbbench"
) -> dict[str, float]:
    import paho.mqtt.client as paho

    from meterbridge.sinks.mqtt_topics import reading_payload

    gateway_id = f"bench{uuid.uuid4().hex[:6]}"
    messages = []
    seq = 0
    for r in range(rounds):
        for m in range(meters):
            for reading in make_readings(m, registers, r):
                seq += 1
                topic = f"{topic_root}/meterbridge/{gateway_id}/readings/{reading.meter_id}"  # type: ignore[attr-defined]
                messages.append((topic, reading_payload(gateway_id, seq, reading)))  # type: ignore[arg-type]
    parts = urlsplit(broker)
    done = threading.Event()
    acked = 0
    lock = threading.Lock()

    def on_publish(client: paho.Client, userdata: object, mid: int, reason: object, props: object) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == len(messages):
                done.set()

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2,
        client_id=f"{gateway_id}-paho",
        protocol=paho.MQTTv5 if mqtt5 else paho.MQTTv311,
    )
    client.on_publish = on_publish
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    start, cpu0 = time.perf_counter(), cpu_seconds()
    for topic, payload in messages:
        client.publish(topic, payload, qos=1)
    if not done.wait(300):
        raise RuntimeError(f"only {acked} of {len(messages)} PUBACKs arrived")
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    client.loop_stop()
    client.disconnect()
    return {
        "readings": len(messages),
        "seconds": elapsed,
        "rate": len(messages) / elapsed,
        "cpu_rate": len(messages) / cpu,
        "peak_rss_mb": peak_rss_mb(),
    }


# ---------------------------------------------------------------- parent


def clear_retained(broker: str, topic_filter: str, quiet: float = 1.0, passes: int = 20) -> int:
    """Publish an empty retained payload on every retained topic under ``topic_filter``; how many. A
    subscriber is not sent every retained message of a large tree at once (Mosquitto drops what its queue
    for the client cannot hold), so this scans and clears again until a scan finds none."""
    cleared: set[str] = set()
    for _ in range(passes):
        found = _clear_retained_once(broker, topic_filter, quiet)
        if not found:
            break
        cleared |= found
    return len(cleared)


def _clear_retained_once(broker: str, topic_filter: str, quiet: float) -> set[str]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    parts = urlsplit(broker)
    retained: set[str] = set()
    last = [time.monotonic()]
    subscribed = threading.Event()

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        last[0] = time.monotonic()
        if message.retain and message.payload:
            retained.add(message.topic)

    def on_subscribe(*args: object) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"mbbench-clear-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    try:
        client.subscribe(topic_filter, qos=0)  # QoS 1: the broker queues only ~1000 of them
        if not subscribed.wait(10):
            raise RuntimeError(f"{broker} did not acknowledge the subscription to {topic_filter!r}")
        while time.monotonic() - last[0] < quiet:  # retained messages come right after the SUBACK
            time.sleep(0.05)
        for info in [client.publish(topic, b"", qos=1, retain=True) for topic in sorted(retained)]:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()
    return retained


def child(kind: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--broker",
        args.broker,
        "--meters",
        str(args.meters),
        "--registers",
        str(args.registers),
        "--rounds",
        str(args.rounds),
        "--topic-root",
        args.topic_root,
    ]  # --repeat is the parent's business
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--registers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2, help="alternating runs of each; the best counts")
    parser.add_argument(
        "--topic-root",
        default=f"mbbench-{uuid.uuid4().hex[:12]}",
        help="topic root of every run (default: a fresh mbbench-<uuid>); its retained messages are cleared",
    )
    parser.add_argument(
        "--child",
        choices=["pipeline", "pipeline-ha", "pipeline-store", "paho", "paho-311"],
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.child in {"paho", "paho-311"}:
        print(
            json.dumps(
                run_paho(
                    args.broker,
                    args.meters,
                    args.registers,
                    args.rounds,
                    mqtt5=args.child == "paho",
                    topic_root=args.topic_root,
                )
            )
        )
        return
    if args.child in {"pipeline", "pipeline-ha", "pipeline-store"}:
        result = asyncio.run(
            run_pipeline(
                args.broker,
                args.meters,
                args.registers,
                args.rounds,
                args.child == "pipeline-ha",
                mqtt=args.child != "pipeline-store",
                topic_root=args.topic_root,
            )
        )
        print(json.dumps(result))
        return

    total = args.meters * args.registers * args.rounds
    print(
        f"{args.meters} meters x {args.registers} registers x {args.rounds} rounds = {total} readings, "
        f"broker {args.broker}, MQTT QoS 1, best of {args.repeat} alternating runs"
    )
    runs: dict[str, list[dict[str, float]]] = {
        "paho": [],
        "paho-311": [],
        "pipeline": [],
        "pipeline-ha": [],
        "pipeline-store": [],
    }
    try:
        for _ in range(args.repeat):  # alternate, so that a load spike on the shared machine hits both
            for kind, results in runs.items():
                results.append(child(kind, args))
    finally:
        cleared = clear_retained(args.broker, f"{args.topic_root}/#")
        print(f"topic root {args.topic_root}: {cleared} retained messages cleared")
    best = {kind: max(results, key=lambda r: r["rate"]) for kind, results in runs.items()}
    rows = [
        ("bare paho-mqtt loop, MQTT 5 (as our sink)", "paho"),
        ("bare paho-mqtt loop, MQTT 3.1.1 (for info)", "paho-311"),
        ("meterbridge: validate + SQLite + MQTT stream", "pipeline"),
        ("meterbridge: same + Home Assistant states", "pipeline-ha"),
        ("meterbridge: validate + SQLite only (no MQTT)", "pipeline-store"),
    ]
    print(f"\n{'run':48} {'readings/s':>11} {'all runs':>16} {'per CPU s':>10} {'peak RSS MB':>12}")
    for label, kind in rows:
        r = best[kind]
        every = " / ".join(f"{x['rate']:,.0f}" for x in runs[kind])
        cpu_best = max(x["cpu_rate"] for x in runs[kind])
        print(f"{label:48} {r['rate']:>11,.0f} {every:>16} {cpu_best:>10,.0f} {r['peak_rss_mb']:>12.1f}")
    ratio = best["pipeline"]["rate"] / best["paho"]["rate"]
    cpu_ratio = max(x["cpu_rate"] for x in runs["pipeline"]) / max(x["cpu_rate"] for x in runs["paho"])
    print(f"\nratio meterbridge / paho loop (MQTT 5), wall clock: {ratio:.2f} (target >= 0.50)")
    print(f"ratio meterbridge / paho loop (MQTT 5), per CPU second of each process: {cpu_ratio:.2f}")
    peak = max(x["peak_rss_mb"] for x in runs["pipeline"] + runs["pipeline-ha"])
    print(f"peak memory of the gateway with {args.meters} meters: {peak:.1f} MB (target < 200 MB)")


if __name__ == "__main__":
    main()
