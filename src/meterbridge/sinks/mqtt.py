"""``MqttSink``: publishes stored readings to an MQTT broker for Home Assistant and the fleet ingest.

It drains its outbox (``BaseSink``: pending -> publish -> confirm only after every PUBACK) and, per reading,

* publishes it once on the fleet stream ``<p>/<gw>/readings/<meter>`` (QoS 1, with its stable id),
* updates the Home Assistant state topic of its entity (latest value, retained), never showing a flagged
  value and never a ``total_increasing`` value below the last one shown,
* feeds the E450 guide's legacy topics when ``legacy_topics`` is set.

On every (re)connection it publishes ``online`` on the availability topic (the last will says ``offline``),
the discovery payloads of the gateway and of each meter (``homeassistant/device/<id>/config``), removes the
devices of meters no longer configured, and re-publishes the retained states and problem states. It does the
same whenever Home Assistant announces ``online`` on ``homeassistant/status``. Quality events become problem
binary sensors. MQTT 5 is used where the broker speaks it (falling back to 3.1.1), with TLS and
username/password; reconnection backs off exponentially (``BaseSink``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
import uuid
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho

from meterbridge import __version__
from meterbridge.errors import ConfigError, TransportError
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.base import BaseSink
from meterbridge.sinks.homeassistant import (
    METER_PROBLEMS,
    EntitySpec,
    Problem,
    entity_for,
    gateway_discovery,
    ha_state,
    legacy_messages,
    meter_discovery,
    problem_for_event_kind,
)
from meterbridge.sinks.mqtt_topics import (
    TopicLayout,
    event_payload,
    problem_payload,
    reading_payload,
    slug,
    state_payload,
)
from meterbridge.sinks.store import MeterInfo, QualityEvent, Store

__all__ = [
    "ELECTRICITY_ONLY_PROBLEMS",
    "NO_MATCHING_SUBSCRIBERS",
    "MqttSettings",
    "MqttSink",
    "Publisher",
    "mqtt_client",
]

log = logging.getLogger(__name__)

#: Problem sensors that only make sense for electricity meters.
ELECTRICITY_ONLY_PROBLEMS: Final = frozenset({"voltage", "frequency", "power_factor", "thd"})


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttSettings:
    """Where and how to connect. ``from_url("mqtts://user:pw@host:8883")`` fills host, port, TLS, login."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    client_id: str | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive: int = 30
    timeout: float = 10.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MqttSettings:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise ConfigError(
                f"{url!r}: expected mqtt://[user[:password]@]host[:port] or mqtts://...", where="mqtt.url"
            )
        tls_option = bool(options.pop("tls", False))
        tls = parts.scheme in ("mqtts", "ssl") or tls_option
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ConfigError(
                f"port in {parts.netloc.rpartition('@')[2]!r}: {exc}", where="mqtt.url"
            ) from None
        username = options.pop("username", None) or (unquote(parts.username) if parts.username else None)
        password = options.pop("password", None) or (unquote(parts.password) if parts.password else None)
        return cls(host=parts.hostname, port=port, tls=tls, username=username, password=password, **options)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def mqtt_client(
    settings: MqttSettings,
    *,
    client_id: str | None,
    protocol: aiomqtt.ProtocolVersion,
    will: aiomqtt.Will | None = None,
    max_inflight: int = 0,
) -> aiomqtt.Client:
    """An aiomqtt client for ``settings`` (not yet connected); paho's own window of messages in flight is
    off unless ``max_inflight`` is given (``Publisher`` keeps the window)."""
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password,
        identifier=client_id,
        protocol=protocol,
        will=will,
        keepalive=settings.keepalive,
        timeout=settings.timeout,
        tls_context=settings.ssl_context(),
        max_inflight_messages=max_inflight,
        clean_start=True if protocol == aiomqtt.ProtocolVersion.V5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
    )


#: MQTT 5 PUBACK reason code "No matching subscribers": the broker accepted the message and dropped it.
NO_MATCHING_SUBSCRIBERS: Final = 0x10


class _Countdown:
    """One ``Publisher.publish`` call: how many of its messages are not yet acknowledged (the future
    resolves at zero) and which ones the broker said no subscriber received."""

    __slots__ = ("done", "left", "unrouted")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.left = 0
        self.done = done
        self.unrouted: set[int] = set()

    def settle(self) -> None:
        self.left -= 1
        if self.left <= 0 and not self.done.done():
            self.done.set_result(None)


class Publisher:
    """Publishes through the paho client that an aiomqtt client drives, in order, with at most
    ``window`` QoS 1/2 messages awaiting acknowledgement.

    ``window`` is the smaller of ``limit`` and the broker's Receive Maximum from its CONNACK (MQTT 5,
    3.2.2.3.3; Mosquitto says 20): a client that sends more is in breach of the protocol, and paho 2.1
    ignores that property. The client must be made with paho's own window off (``mqtt_client(...,
    max_inflight=0)``), because paho's window rescans every message in flight on each PUBACK; messages
    beyond the window wait in a FIFO here and go out as acknowledgements come in (constant work per
    message). Acknowledgements are taken straight from paho's ``on_publish`` (aiomqtt's keeps one
    pending call per message and scans all of them for each new one, and drops the MQTT 5 reason code).

    Made before the client connects (it reads the CONNACK); used on the event loop that drives the client.
    """

    def __init__(self, client: aiomqtt.Client, *, limit: int = 100) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.client = client
        self.limit = limit
        self.receive_maximum: int | None = None  # from the CONNACK (MQTT 5 only)
        self.in_flight = 0  # QoS 1/2 messages sent and not yet acknowledged
        self.peak = 0  # the most that ever were (the tests check it against the window)
        self._paho: paho.Client = client._client
        self._queue: deque[tuple[str, bytes, int, bool, _Countdown, int]] = deque()
        self._owner: dict[int, tuple[_Countdown, int, bool]] = {}  # mid -> (call, position, counted)
        self._on_connect = self._paho.on_connect
        self._on_publish = self._paho.on_publish
        self._paho.on_connect = self._connected
        self._paho.on_publish = self._published

    @property
    def window(self) -> int:
        rm = self.receive_maximum
        return self.limit if rm is None else max(1, min(self.limit, rm))

    def _connected(self, c: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
        self.receive_maximum = getattr(props, "ReceiveMaximum", None)
        if self._on_connect is not None:
            self._on_connect(c, userdata, flags, reason, props)  # type: ignore[call-arg]

    def _published(self, c: paho.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        owner = self._owner.pop(mid, None)
        if owner is None:  # not ours (aiomqtt's own publish)
            if self._on_publish is not None:
                self._on_publish(c, userdata, mid, reason, props)  # type: ignore[call-arg]
            return
        call, position, counted = owner
        if getattr(reason, "value", reason) == NO_MATCHING_SUBSCRIBERS:
            call.unrouted.add(position)
        call.settle()
        if counted:
            self.in_flight -= 1
            self._pump()

    def _pump(self) -> None:
        queue = self._queue
        while queue and (queue[0][2] == 0 or self.in_flight < self.window):
            topic, payload, qos, retain, call, position = queue.popleft()
            try:
                self._send(topic, payload, qos, retain, call, position)
            except aiomqtt.MqttError as exc:  # inside paho's callback: fail the call, not paho's read loop
                if not call.done.done():
                    call.done.set_exception(exc)

    def _send(
        self, topic: str, payload: bytes, qos: int, retain: bool, call: _Countdown, position: int
    ) -> None:
        info = self._paho.publish(topic, payload, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if qos > 0:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        self._owner[info.mid] = (call, position, qos > 0)

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """One message (acknowledged, or written for QoS 0)."""
        await self.publish_many([(topic, payload, qos, retain)])

    async def publish_many(
        self, messages: Sequence[tuple[str, bytes, int, bool]], *, timeout: float | None = None
    ) -> set[int]:
        """Publish ``(topic, payload, qos, retain)`` messages in order and wait until the broker
        acknowledged every one (QoS 1 PUBACK; QoS 0: written to the socket). Returns the positions of the
        messages the broker acknowledged with "no matching subscribers" (MQTT 5). Raises
        ``aiomqtt.MqttError`` if the connection drops or ``timeout`` (default: the client's timeout plus
        10 ms a message) passes first; what was not sent by then is dropped from the queue."""
        if not messages:
            return set()
        loop = asyncio.get_running_loop()
        call = _Countdown(loop.create_future())
        call.left = len(messages)
        try:
            for position, (topic, payload, qos, retain) in enumerate(messages):
                queue = self._queue
                if not queue and (qos == 0 or self.in_flight < self.window):
                    self._send(topic, payload, qos, retain, call, position)
                else:
                    queue.append((topic, payload, qos, retain, call, position))
            if timeout is None:
                timeout = (self.client.timeout or 10.0) + len(messages) / 100
            disconnected = self.client._disconnected
            finished, _ = await asyncio.wait(
                {call.done, disconnected}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if call.done not in finished:
                reason = (
                    "connection lost"
                    if disconnected in finished
                    else f"no acknowledgement within {timeout} s"
                )
                raise aiomqtt.MqttError(f"{call.left} of {len(messages)} messages not acknowledged: {reason}")
            call.done.result()  # raises what failed a send from the queue
            return call.unrouted
        finally:
            if call.left > 0 and any(item[4] is call for item in self._queue):
                # failed or cancelled: what of this call is still queued is not sent (what is in flight
                # keeps its place in the window until the broker acknowledges it)
                self._queue = deque(item for item in self._queue if item[4] is not call)


@dataclass(slots=True)
class _ProblemState:
    """Which keys (registers or buses) currently hold a problem raised, and the last event seen."""

    active: dict[str, QualityEvent] = field(default_factory=dict)
    last: QualityEvent | None = None

    def apply(self, event: QualityEvent, scope: str) -> None:
        if event.active:
            self.active[scope] = event
        else:
            self.active.pop(scope, None)
        self.last = event

    @property
    def on(self) -> bool:
        return bool(self.active)


class MqttSink(BaseSink):
    """Readings, discovery, availability and problem sensors over MQTT (see the module docstring)."""

    publish_flagged = (
        True  # flagged readings go to the fleet stream and to HA with their quality (value withheld)
    )
    batch_size = 500
    max_inflight = 100  # QoS 1 messages on the wire awaiting PUBACK (at most the broker's Receive Maximum)

    def __init__(
        self,
        settings: MqttSettings,
        *,
        gateway_id: str,
        gateway_name: str | None = None,
        prefix: str = "meterbridge",
        discovery: bool = True,
        discovery_prefix: str = "homeassistant",
        legacy_topics: bool | str = False,
        expire_after: int | None = 600,
        expire_after_by_meter: Mapping[str, int] | None = None,
        meters: Iterable[MeterInfo] = (),
        configured_meters: Collection[str] | None = None,
        qos: int = 1,
        require_subscriber: bool = False,
        keep_protocols: Collection[str] = (),
        name: str = "mqtt",
    ) -> None:
        super().__init__()
        self.name = name
        self.settings = settings
        self.layout = TopicLayout(gateway_id, prefix, discovery_prefix)
        self.gateway_name = gateway_name
        self.discovery = discovery
        self.legacy_topics = legacy_topics
        self.expire_after = expire_after
        self.expire_after_by_meter = dict(expire_after_by_meter or {})
        self.configured = None if configured_meters is None else frozenset(configured_meters)
        self.qos = qos
        self.require_subscriber = require_subscriber
        self.keep_protocols = frozenset(keep_protocols)  # meters of these protocols are never removed
        self.unrouted = 0  # fleet-stream readings the broker had no subscriber for (kept when required)
        self._meters: dict[str, MeterInfo] = {m.id: m for m in meters}
        self._entities: dict[str, dict[str, EntitySpec]] = {}
        self._announced: dict[str, bytes] = {}
        self._retained: dict[str, bytes] = {}  # state and problem topics -> last payload, re-sent on announce
        self._last_counter: dict[tuple[str, str], float | int] = {}
        self._problems: dict[tuple[str | None, str], _ProblemState] = {}
        self._unsent_events: deque[QualityEvent] = deque(maxlen=10_000)
        self._removed: set[str] = set()
        self._legacy_meter: str | None = legacy_topics if isinstance(legacy_topics, str) else None
        self._client: aiomqtt.Client | None = None
        self._publisher: Publisher | None = None
        self._listener: asyncio.Task[None] | None = None
        self._announcer: asyncio.Task[None] | None = None
        self._store: Store | None = None
        self._loaded = False
        self._protocol: aiomqtt.ProtocolVersion | None = {
            "5": aiomqtt.ProtocolVersion.V5,
            "3.1.1": aiomqtt.ProtocolVersion.V311,
        }.get(settings.protocol)
        self._outbox_published_at = 0.0
        self._stream_topics: dict[str, str] = {}  # meter id -> fleet stream topic
        self._state_topics: dict[tuple[str, str], str] = {}  # (meter slug, object id) -> state topic
        self._floor: dict[tuple[str, str], float | int] = {}  # (meter slug, object id) -> value HA last saw
        self._sync_marker: str | None = None
        self._sync_done = asyncio.Event()
        self._synced = False
        self.protocol: aiomqtt.ProtocolVersion | None = None  # the version of the current connection
        self.announcements = 0  # how many times discovery was (re)published: for tests and metrics
        self.connections = 0

    @classmethod
    def from_config(
        cls,
        mqtt: Any,
        *,
        gateway_id: str,
        meters: Iterable[Any] = (),
        config: Any = None,
        **extra: Any,
    ) -> MqttSink:
        """Build from the gateway configuration's ``sinks.mqtt`` section (read by attribute name).

        ``meters`` (``MeterInfo`` or config entries with ``id``) are the configured meters: when given, the
        devices of meters in the store's inventory but not among them are removed from Home Assistant.
        ``config`` (the whole ``GatewayConfig``) does that and more: its meters and the meters listed on its
        buses are the configured ones, meters a bus scan finds (protocol ``mbus``) are kept while a bus
        scans, and each sensor's ``expire_after`` is three read intervals of its meter (at least 60 s;
        meters found by a scan: three intervals of the slowest bus).
        """
        tls = getattr(mqtt, "tls", None)
        password = getattr(mqtt, "password", None)
        if password is not None and hasattr(password, "get_secret_value"):
            password = password.get_secret_value()
        settings = MqttSettings.from_url(
            mqtt.url,
            username=getattr(mqtt, "username", None),
            password=password,
            client_id=getattr(mqtt, "client_id", None),
            ca_file=getattr(tls, "ca_file", None),
            cert_file=getattr(tls, "cert_file", None),
            key_file=getattr(tls, "key_file", None),
            tls_insecure=bool(getattr(tls, "insecure", False)),
        )  # TLS is on when the URL says mqtts://; the tls section only supplies CA, certificate and key
        infos = [
            m
            if isinstance(m, MeterInfo)
            else MeterInfo(id=m.id, name=getattr(m, "name", None), protocol=getattr(m, "protocol", None))
            for m in meters
        ]
        options: dict[str, Any] = {}
        if config is not None:
            options = _options_from_gateway_config(config)
            known = {m.id for m in infos}
            infos += [m for m in options.pop("meters") if m.id not in known]
        options.update(extra)
        return cls(
            settings,
            gateway_id=gateway_id,
            prefix=getattr(mqtt, "base_topic", "meterbridge"),
            discovery=getattr(mqtt, "discovery", True),
            discovery_prefix=getattr(mqtt, "discovery_prefix", "homeassistant"),
            legacy_topics=getattr(mqtt, "legacy_topics", False),
            qos=getattr(mqtt, "qos", 1),
            require_subscriber=bool(getattr(mqtt, "require_subscriber", False)),
            meters=infos,
            configured_meters=[m.id for m in infos] if infos else None,
            **options,
        )

    # ------------------------------------------------------------------------------------------ lifecycle

    async def run(self, store: Store, stop: asyncio.Event) -> None:
        self._store = store
        await super().run(store, stop)

    async def _load(self) -> None:
        """Meters, their registers, last counter values and open problems from the store (once)."""
        if self._loaded or self._store is None:
            return
        store = self._store

        def read() -> tuple[list[MeterInfo], dict[str, dict[str, Reading]], list[QualityEvent]]:
            meters = store.meters()
            latest = {m.id: store.latest(m.id, ok_only=True) for m in meters}
            return meters, latest, store.events(limit=2000)

        meters, latest, events = await asyncio.to_thread(read)
        for meter in meters:
            self._meters[meter.id] = _merge(self._meters.get(meter.id), meter)
        for meter_id, by_key in latest.items():
            if not self._wanted(meter_id):
                continue
            for reading in by_key.values():
                spec = self._spec(reading)
                value, valid = ha_state(spec, reading)
                if valid and spec.is_counter and isinstance(value, int | float):
                    self._last_counter[(slug(meter_id), spec.object_id)] = value
        for event in reversed(events):  # oldest first
            self._apply_event(event)
        self._loaded = True

    def _wanted(self, meter_id: str) -> bool:
        if self.configured is None or meter_id in self.configured:
            return True
        meter = self._meters.get(meter_id)
        return meter is not None and meter.protocol in self.keep_protocols

    async def connect(self) -> None:
        await self._close_client()
        await self._load()
        client, publisher = await self._open_client()
        self._client, self._publisher = client, publisher
        self.connections += 1
        self._listener = asyncio.create_task(self._listen(client, publisher), name=f"{self.name}-listener")
        await client.subscribe(self.layout.ha_status, qos=1)
        if not self._synced:
            await self._sync_retained(client, publisher)
        await publisher.publish(self.layout.status, b"online", qos=1, retain=True)
        await self._announce(publisher)
        await self._flush_events(publisher)
        self.connected = True
        log.info("mqtt: connected to %s:%d", self.settings.host, self.settings.port)

    async def _sync_retained(self, client: aiomqtt.Client, publisher: Publisher) -> None:
        """Read back the retained states (what Home Assistant last saw) once: a counter never goes below them.

        The retained messages of a subscription are sent before anything published after it, so a marker
        message published after subscribing says that all of them have arrived.
        """
        marker = f"{self.layout.base}/sync/{uuid.uuid4().hex}"
        state_filter = f"{self.layout.base}/meter/+/state/+"
        self._sync_marker = marker
        self._sync_done.clear()
        await client.subscribe(marker, qos=1)
        await client.subscribe(state_filter, qos=1)
        await publisher.publish(marker, b"sync", qos=1)
        try:
            await asyncio.wait_for(self._sync_done.wait(), self.settings.timeout)
            self._synced = True
        except TimeoutError:
            log.warning("mqtt: retained states not read back; counter floors come from the store only")
        finally:
            self._sync_marker = None
            await client.unsubscribe(state_filter)
            await client.unsubscribe(marker)

    def _note_retained_state(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        try:
            body = json.loads(payload)
        except ValueError:
            return
        if not isinstance(body, dict) or body.get("valid") is not True:
            return
        value = body.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            self._floor[(parts[-3], parts[-1])] = value
            self._retained.setdefault(topic, payload)

    async def _open_client(self) -> tuple[aiomqtt.Client, Publisher]:
        will = aiomqtt.Will(self.layout.status, b"offline", qos=1, retain=True)
        client_id = self.settings.client_id or f"meterbridge-{self.layout.gateway_id}"
        versions = (
            [self._protocol]
            if self._protocol is not None
            else [aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311]
        )
        last: Exception | None = None
        for version in versions:
            client = mqtt_client(
                self.settings,
                client_id=client_id,
                protocol=version,
                will=will,
            )
            publisher = Publisher(client, limit=self.max_inflight)
            try:
                await client.__aenter__()
            except aiomqtt.MqttError as exc:
                last = exc
                # no TCP connection at all (refused, unreachable): the broker is down, not too old
                unreachable = "Errno" in str(exc) or "Name or service" in str(exc)
                if version == aiomqtt.ProtocolVersion.V5 and not unreachable and len(versions) > 1:
                    # refused ("unsupported protocol version"), closed or left unanswered: try MQTT 3.1.1
                    log.info("mqtt: MQTT 5 connection failed (%s); trying MQTT 3.1.1", exc)
                    continue
                raise TransportError(
                    f"MQTT broker {self.settings.host}:{self.settings.port}: {exc}"
                ) from None
            if version == aiomqtt.ProtocolVersion.V311 and last is not None:
                self._protocol = version  # the broker only speaks 3.1.1: do not try 5 on every reconnect
            self.protocol = version
            return client, publisher
        raise TransportError(f"MQTT broker {self.settings.host}:{self.settings.port}: {last}") from None

    async def disconnect(self) -> None:
        publisher = self._publisher
        if publisher is not None and self.connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    publisher.publish(self.layout.status, b"offline", qos=1, retain=True), 2
                )
        await self._close_client()
        self.connected = False

    async def _close_client(self) -> None:
        for task in (self._listener, self._announcer):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._listener = self._announcer = None
        client, self._client, self._publisher = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.__aexit__(None, None, None), 3)

    async def _listen(self, client: aiomqtt.Client, publisher: Publisher) -> None:
        try:
            async for message in client.messages:
                topic = str(message.topic)
                if self._sync_marker is not None and topic.startswith(self.layout.base + "/"):
                    if topic == self._sync_marker:
                        self._sync_done.set()
                    elif message.retain and isinstance(message.payload, bytes) and message.payload:
                        self._note_retained_state(topic, message.payload)
                    continue
                if (
                    message.topic.matches(self.layout.ha_status)
                    and bytes(message.payload or b"") == b"online"
                ):
                    log.info("mqtt: Home Assistant is online; re-sending discovery")
                    if self._announcer is None or self._announcer.done():
                        self._announcer = asyncio.create_task(self._announce(publisher))
        except aiomqtt.MqttError as exc:
            log.warning("mqtt: connection lost (%s)", exc)
            self.connected = False
            self.wake()

    # ------------------------------------------------------------------------------------------ discovery

    def _meter(self, meter_id: str) -> MeterInfo:
        meter = self._meters.get(meter_id)
        if meter is None:
            meter = self._meters[meter_id] = MeterInfo(id=meter_id)
        return meter

    def _problem_set(self, meter: MeterInfo) -> list[Problem]:
        electric = meter.kind in ("electricity", "electric") or (
            meter.kind is None and meter.protocol != "mbus"
        )
        return [p for p in METER_PROBLEMS if electric or p.kind not in ELECTRICITY_ONLY_PROBLEMS]

    def _meter_config(self, meter_id: str) -> tuple[str, bytes]:
        meter = self._meter(meter_id)
        return meter_discovery(
            self.layout,
            meter,
            self._entities.get(meter_id, {}).values(),
            sw_version=__version__,
            expire_after=self.expire_after_by_meter.get(meter_id, self.expire_after),
            problems=self._problem_set(meter),
        )

    async def _announce(self, publisher: Publisher) -> None:
        """Gateway and meter discovery, removals, retained states and problem states."""
        sends: list[tuple[str, bytes]] = []
        if self.discovery:
            sends.append(gateway_discovery(self.layout, name=self.gateway_name, sw_version=__version__))
            for meter_id in sorted(self._meters):
                if not self._wanted(meter_id):
                    sends.extend(self._removal(meter_id))
                    continue
                topic, payload = self._meter_config(meter_id)
                self._announced[meter_id] = payload
                sends.append((topic, payload))
        sends.extend(self._retained.items())
        for (owner, kind), state in self._problems.items():
            if owner is None or self._wanted(owner):
                sends.append(self._problem_message(owner, kind, state))
        await publisher.publish_many([(t, p, 1, True) for t, p in sends])
        self.announcements += 1

    def _removal(self, meter_id: str) -> list[tuple[str, bytes]]:
        """Empty retained payloads: Home Assistant deletes the device; the broker forgets its states."""
        self._removed.add(meter_id)
        self._announced.pop(meter_id, None)
        out = [(self.layout.discovery(self.layout.meter_device_id(meter_id)), b"")]
        prefix = f"{self.layout.base}/meter/{slug(meter_id)}/"
        for topic in [t for t in self._retained if t.startswith(prefix)]:
            del self._retained[topic]
            out.append((topic, b""))
        out.extend((self.layout.meter_problem(meter_id, p.kind), b"") for p in METER_PROBLEMS)
        return out

    async def on_meter(self, meter: MeterInfo) -> None:
        self._meters[meter.id] = _merge(self._meters.get(meter.id), meter)
        publisher = self._publisher
        if publisher is None or not self.connected or not self.discovery or not self._wanted(meter.id):
            return
        topic, payload = self._meter_config(meter.id)
        if self._announced.get(meter.id) != payload:
            await publisher.publish(topic, payload, qos=1, retain=True)
            self._announced[meter.id] = payload

    # ------------------------------------------------------------------------------------------ events

    def _apply_event(self, event: QualityEvent) -> tuple[str | None, str, _ProblemState] | None:
        found = problem_for_event_kind(event.kind)
        if found is None:
            return None
        problem, gateway_wide = found
        owner = None if gateway_wide else event.meter_id
        scope = (event.meter_id if gateway_wide else event.key) or event.kind
        state = self._problems.setdefault((owner, problem.kind), _ProblemState())
        state.apply(event, scope)
        return owner, problem.kind, state

    def _problem_message(self, meter_id: str | None, kind: str, state: _ProblemState) -> tuple[str, bytes]:
        last = state.last
        assert last is not None
        topic = (
            self.layout.gateway_problem(kind)
            if meter_id is None
            else self.layout.meter_problem(meter_id, kind)
        )
        detail = {
            "active": sorted(state.active),
            "kind": last.kind,
            "key": last.key,
            "value": None if last.value is None else str(last.value),
            "threshold": None if last.threshold is None else str(last.threshold),
        }
        shown = max(state.active.values(), key=lambda e: e.timestamp) if state.on else last
        return topic, problem_payload(
            state.on, timestamp=shown.timestamp, message=shown.message, detail=detail
        )

    async def on_event(self, event: QualityEvent) -> None:
        applied = self._apply_event(event)
        self._unsent_events.append(event)  # sent on the event stream now or after the next connection
        publisher = self._publisher
        if publisher is None or not self.connected:
            return
        try:
            if applied is not None and (applied[0] is None or self._wanted(applied[0])):
                topic, payload = self._problem_message(*applied)
                await publisher.publish(topic, payload, qos=1, retain=True)
            await self._flush_events(publisher)
        except aiomqtt.MqttError as exc:
            log.warning("mqtt: event not published now (%s); it is sent after reconnecting", exc)

    async def _flush_events(self, publisher: Publisher) -> None:
        """Publish the events not yet on the event stream, oldest first; keep them if the broker fails."""
        events = list(self._unsent_events)
        gateway = self.layout.gateway_id
        await publisher.publish_many(
            [(self.layout.events, event_payload(gateway, e), 1, False) for e in events]
        )
        sent = {id(e) for e in events}  # on_event may have added more meanwhile: they stay for the next flush
        while self._unsent_events and id(self._unsent_events[0]) in sent:
            self._unsent_events.popleft()

    # ------------------------------------------------------------------------------------------ readings

    def _spec(self, reading: Reading) -> EntitySpec:
        entities = self._entities.setdefault(reading.meter_id, {})
        spec = entities.get(reading.key_text)
        if spec is None:
            spec = entity_for(reading, self._meter(reading.meter_id).kind)
            entities[reading.key_text] = spec
        return spec

    def _ha_messages(self, reading: Reading, spec: EntitySpec) -> list[tuple[str, bytes, bool]]:
        """(topic, payload, shows a value) for the entity's state and, if enabled, the legacy topics."""
        value, valid = ha_state(spec, reading)
        shown = reading
        counter_key = (slug(reading.meter_id), spec.object_id)
        if valid and spec.is_counter and isinstance(value, int | float):
            floors = [
                f
                for f in (self._last_counter.get(counter_key), self._floor.get(counter_key))
                if f is not None
            ]
            if floors and value < max(floors):
                valid = False  # never a lower total_increasing value, whatever validation said
                shown = reading.flagged(Quality.NOT_MONOTONIC)
            else:
                self._last_counter[counter_key] = value
        topic = self._state_topics.get(counter_key)
        if topic is None:
            topic = self._state_topics[counter_key] = self.layout.state(reading.meter_id, spec.object_id)
        payload = state_payload(shown, value, spec.unit, valid=valid)
        out = [(topic, payload, valid)]
        if valid:
            self._retained[topic] = payload
        if self.legacy_topics and valid and (legacy := legacy_messages(reading)):
            if self._legacy_meter is None:
                self._legacy_meter = (
                    reading.meter_id
                )  # legacy_topics: true -> the first meter that feeds them
            if reading.meter_id == self._legacy_meter:
                out.extend((t, p, True) for t, p in legacy)
        return out

    async def publish(self, batch: Sequence[tuple[int, Reading]]) -> Sequence[int]:
        publisher = self._publisher
        if publisher is None or not self.connected:
            raise TransportError("MQTT: not connected")
        stream: list[tuple[str, bytes]] = []
        # per state topic: the batch's last good payload, then a later flagged one (if any): HA keeps the good
        # value and still sees the flag; states are "latest per entity", so older ones in a batch are dropped
        states: dict[str, tuple[bytes | None, bytes | None]] = {}
        changed_meters: set[str] = set()
        for seq, reading in batch:
            topic = self._stream_topics.get(reading.meter_id)
            if topic is None:
                topic = self._stream_topics[reading.meter_id] = self.layout.readings(reading.meter_id)
            stream.append((topic, reading_payload(self.layout.gateway_id, seq, reading)))
            if not self.discovery or not self._wanted(reading.meter_id):
                continue
            if reading.key_text not in self._entities.get(reading.meter_id, {}):
                changed_meters.add(reading.meter_id)
            for topic, payload, valid in self._ha_messages(reading, self._spec(reading)):
                good, _bad = states.get(topic, (None, None))
                states[topic] = (payload, None) if valid else (good, payload)
        announce = []
        for meter_id in sorted(changed_meters):
            topic, payload = self._meter_config(meter_id)
            if self._announced.get(meter_id) != payload:
                self._announced[meter_id] = payload
                announce.append((topic, payload))
        # discovery first, then the stream and the states (paho keeps this order on the wire)
        messages = [(t, p, 1, True) for t, p in announce]
        first_stream = len(messages)
        messages += [(t, p, self.qos, False) for t, p in stream]
        messages += [(t, p, self.qos, True) for t, pair in states.items() for p in pair if p is not None]
        unrouted = await publisher.publish_many(messages)
        kept = {
            batch[i - first_stream][0] for i in unrouted if first_stream <= i < first_stream + len(stream)
        }
        if kept and self.require_subscriber:
            self.unrouted += len(kept)
            log.warning(
                "mqtt: no subscriber took %d readings of the fleet stream; they stay in the outbox", len(kept)
            )
            await self._publish_outbox_depth(publisher)
            return [seq for seq, _ in batch if seq not in kept]
        await self._publish_outbox_depth(publisher)
        return [seq for seq, _ in batch]

    async def _publish_outbox_depth(self, publisher: Publisher) -> None:
        now = time.monotonic()
        if self._store is None or now - self._outbox_published_at < 1.0:
            return
        self._outbox_published_at = now
        depth = await asyncio.to_thread(self._store.outbox_depth, self.name)
        await publisher.publish(self.layout.outbox, str(depth).encode(), qos=0, retain=True)


def _merge(old: MeterInfo | None, new: MeterInfo) -> MeterInfo:
    if old is None:
        return new
    values = {
        name: getattr(new, name) if getattr(new, name) is not None else getattr(old, name)
        for name in ("name", "kind", "protocol", "address", "serial", "manufacturer", "firmware", "last_seen")
    }
    return MeterInfo(id=new.id, **values)


def _options_from_gateway_config(config: Any) -> dict[str, Any]:
    """Meters, ``expire_after`` per meter and the protocols to keep, from a ``GatewayConfig``."""
    meters: list[MeterInfo] = []
    expire: dict[str, int] = {}
    for m in getattr(config, "meters", ()):
        meters.append(MeterInfo(id=m.id, name=m.name, protocol=m.protocol, kind="electricity"))
        expire[m.id] = max(60, round(3 * float(m.interval)))
    buses = list(getattr(config, "buses", ()))
    slowest = 0.0
    scanning = False
    for bus in buses:
        slowest = max(slowest, float(bus.interval))
        scanning = scanning or bus.scan.mode != "none"
        for bm in bus.meters:
            if bm.id:
                meters.append(MeterInfo(id=bm.id, name=bm.name, protocol="mbus"))
                expire[bm.id] = max(60, round(3 * float(bus.interval)))
    options: dict[str, Any] = {"meters": meters, "expire_after_by_meter": expire}
    if buses:
        options["expire_after"] = max(600, round(3 * slowest))
    if scanning:
        options["keep_protocols"] = ("mbus",)
    return options
