"""The fleet ingest: MQTT reading stream -> PostgreSQL, idempotent, several copies sharing the load.

``IngestService`` subscribes to the fleet stream (``<p>/+/readings/#``, see ``mqtt_topics``) through an
MQTT 5 shared subscription ``$share/<group>/...``: the broker hands each message to one member of the group,
so running more copies spreads the load. Each copy

* keeps a persistent session (clean start off, a session expiry interval, a stable client id), so messages
  sent to it while it is away wait for it and unacknowledged ones are re-sent when it comes back;
* acknowledges manually (paho-mqtt ``manual_ack``): a batch of messages is written in one transaction and the
  PUBACKs are sent, in arrival order, only after ``COMMIT`` succeeded. A copy that dies before committing
  loses nothing: the broker re-sends what it had not acknowledged;
* writes idempotently: the primary key ``(gateway, seq)`` is the reading's stable id and the insert is
  ``ON CONFLICT DO NOTHING``, so a redelivered message never makes a second row;
* puts a message it cannot decode into ``fleet_rejects`` (topic, payload, error) in the same transaction and
  acknowledges it, so a poison message is kept for inspection and does not block the stream.

Threads: paho's network loop receives, one writer thread batches, commits and acknowledges. PostgreSQL
outages are retried with backoff while holding the unacknowledged messages.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from meterbridge.errors import ProtocolError, TransportError
from meterbridge.sinks.mqtt import MqttSettings
from meterbridge.sinks.mqtt_topics import TopicLayout, decode_reading_payload, slug
from meterbridge.sinks.store import encode_value

__all__ = [
    "SCHEMA_SQL",
    "IngestService",
    "IngestSettings",
    "IngestStats",
    "default_client_id",
    "ensure_schema",
]

log = logging.getLogger(__name__)

SCHEMA_SQL: Final = """
CREATE TABLE IF NOT EXISTS fleet_readings (
    gateway      text        NOT NULL,
    seq          bigint      NOT NULL,
    meter_id     text        NOT NULL,
    key          text        NOT NULL,
    name         text,
    ts           timestamptz NOT NULL,
    value        text,
    value_num    numeric,
    value_type   text        NOT NULL,
    unit         text,
    quality      integer     NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    ingested_by  text,
    PRIMARY KEY (gateway, seq)
);
CREATE INDEX IF NOT EXISTS fleet_readings_meter_key_ts ON fleet_readings (gateway, meter_id, key, ts);
CREATE TABLE IF NOT EXISTS fleet_rejects (
    id           bigserial   PRIMARY KEY,
    topic        text        NOT NULL,
    payload      bytea       NOT NULL,
    error        text        NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    ingested_by  text
);
"""

_INSERT: Final = (
    "INSERT INTO fleet_readings (gateway, seq, meter_id, key, name, ts, value, value_num, value_type, unit,"
    " quality, ingested_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (gateway, seq) DO NOTHING"
)
_REJECT: Final = "INSERT INTO fleet_rejects (topic, payload, error, ingested_by) VALUES (%s, %s, %s, %s)"
_NUMERIC_TYPES: Final = frozenset({"int", "decimal", "float", "bool"})


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the ingest tables if missing (serialised by an advisory lock: copies may start together)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('meterbridge_fleet_schema'))")
        conn.execute(SCHEMA_SQL)


def default_client_id() -> str:
    """``meterbridge-ingest-<hostname>``: stable across restarts of a copy on one host."""
    return f"meterbridge-ingest-{slug(socket.gethostname())}"


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestSettings:
    """One ingest copy. ``client_id`` must be stable across restarts of the same copy (its session)."""

    mqtt: MqttSettings
    dsn: str = field(repr=False)
    group: str = "meterbridge-ingest"
    prefix: str = "meterbridge"
    client_id: str = field(default_factory=default_client_id)
    batch_size: int = 500
    session_expiry: int = 86_400
    shared: bool = True


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    acked: int = 0
    commits: int = 0
    db_errors: int = 0
    connects: int = 0


@dataclass(frozen=True, slots=True)
class _Incoming:
    mid: int
    qos: int
    topic: str
    payload: bytes


class IngestService:
    """See the module docstring. ``start()``, then ``stop()``; ``stats`` counts what happened."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self._queue: queue.Queue[_Incoming] = queue.Queue()
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._writer: threading.Thread | None = None
        self._client = self._make_client()
        self._conn: psycopg.Connection[Any] | None = None
        layout = TopicLayout("ingest", settings.prefix)
        self.topic_filter = layout.readings_filter(settings.group if settings.shared else None)

    # ------------------------------------------------------------------------------------------ MQTT side

    def _make_client(self) -> paho.Client:
        s = self.settings.mqtt
        client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.client_id,
            protocol=paho.MQTTv5,
            manual_ack=True,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        context = s.ssl_context()
        if context is not None:
            client.tls_set_context(context)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(max(20, self.settings.batch_size))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.warning("ingest: broker refused the connection: %s", reason)
            return
        self.stats.connects += 1
        log.info("ingest %s: connected (session present: %s)", self.settings.client_id, flags.session_present)
        client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        failed = [r for r in reasons if r.is_failure]
        if failed:
            log.error("ingest: subscription to %s refused: %s", self.topic_filter, failed)
            return
        log.info("ingest %s: subscribed to %s", self.settings.client_id, self.topic_filter)
        self._subscribed.set()

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._subscribed.clear()
        if not self._stop.is_set():
            log.warning("ingest: disconnected (%s); paho reconnects with backoff", reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.stats.received += 1
        self._queue.put(_Incoming(message.mid, message.qos, message.topic, bytes(message.payload)))

    # ------------------------------------------------------------------------------------------ DB side

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.settings.dsn, autocommit=False)
            ensure_schema(self._conn)
        return self._conn

    def _rows(self, batch: Sequence[_Incoming]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        rows: list[tuple[Any, ...]] = []
        rejects: list[tuple[Any, ...]] = []
        me = self.settings.client_id
        for item in batch:
            try:
                fleet = decode_reading_payload(item.payload)
            except ProtocolError as exc:
                rejects.append((item.topic, item.payload, str(exc), me))
                continue
            r = fleet.reading
            value_type, text, _ = encode_value(r.value)
            numeric = text if value_type in _NUMERIC_TYPES and text is not None else None
            if numeric is not None and value_type == "float" and text in ("inf", "-inf", "nan"):
                numeric = None
            rows.append(
                (
                    fleet.gateway,
                    fleet.seq,
                    r.meter_id,
                    r.key_text,
                    r.name,
                    r.timestamp,
                    text,
                    numeric,
                    value_type,
                    r.unit,
                    int(r.quality),
                    me,
                )
            )
        return rows, rejects

    def _write(self, batch: Sequence[_Incoming]) -> None:
        """Insert ``batch`` in one transaction; retried (with the same rows) until it commits or we stop."""
        rows, rejects = self._rows(batch)
        delay = 0.2
        while True:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cur:
                    if rows:
                        cur.executemany(_INSERT, rows)
                        inserted = max(cur.rowcount, 0)
                    else:
                        inserted = 0
                    if rejects:
                        cur.executemany(_REJECT, rejects)
                self.stats.inserted += inserted
                self.stats.duplicates += len(rows) - inserted
                self.stats.rejected += len(rejects)
                self.stats.commits += 1
                return
            except psycopg.Error as exc:
                self.stats.db_errors += 1
                log.warning("ingest: PostgreSQL write failed (%s); retrying in %.1f s", exc, delay)
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.close()
                self._conn = None
                if self._stop.wait(delay):
                    raise TransportError("ingest stopped while PostgreSQL was failing") from exc
                delay = min(delay * 2, 10.0)

    def _next_batch(self) -> list[_Incoming]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.settings.batch_size:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _writer_loop(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch:
                continue
            try:
                self._write(batch)
            except TransportError:
                return  # stopping: the broker re-sends what we did not acknowledge
            for item in batch:  # in arrival order, after COMMIT
                self._client.ack(item.mid, item.qos)
                self.stats.acked += 1

    # ------------------------------------------------------------------------------------------ control

    def start(self, *, wait_subscribed: float | None = 10.0) -> IngestService:
        """Connect (persistent session), subscribe, start the writer. Raises ``TransportError`` if the
        broker or PostgreSQL cannot be reached at start."""
        try:
            self._connection()
        except psycopg.Error as exc:
            raise TransportError(f"ingest: PostgreSQL: {exc}") from None
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.settings.session_expiry
        props.ReceiveMaximum = max(20, min(self.settings.batch_size, 65535))
        s = self.settings.mqtt
        try:
            self._client.connect(s.host, s.port, keepalive=s.keepalive, clean_start=False, properties=props)
        except OSError as exc:
            raise TransportError(f"ingest: MQTT broker {s.host}:{s.port}: {exc}") from None
        self._writer = threading.Thread(target=self._writer_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        self._client.loop_start()
        if wait_subscribed is not None and not self._subscribed.wait(wait_subscribed):
            self.stop()
            raise TransportError(f"ingest: no subscription to {self.topic_filter} within {wait_subscribed} s")
        return self

    def stop(self) -> None:
        """Disconnect cleanly (the session stays on the broker); unacknowledged messages are re-sent later."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=30)
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()

    def run_forever(self, stop: threading.Event, *, report_every: float = 60.0) -> None:
        self.start(wait_subscribed=None)
        last = time.monotonic()
        try:
            while not stop.wait(1.0):
                if time.monotonic() - last >= report_every:
                    last = time.monotonic()
                    log.info("ingest: %s", self.stats)
        finally:
            self.stop()
