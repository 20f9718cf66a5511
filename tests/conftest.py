"""Shared service fixtures for the whole suite: MQTT brokers and PostgreSQL.

``mqtt_broker``
    ``(host, port)`` of a broker for the session: the system Mosquitto on 127.0.0.1:1883 when it answers an
    MQTT CONNECT; otherwise, outside CI, an embedded amqtt broker (MQTT 3.1.1 only) started in a subprocess on
    a free port. ``mqtt_broker.kind`` says which (``"mosquitto"`` or ``"amqtt"``), ``mqtt_broker.mqtt5`` whether
    MQTT 5 features (shared subscriptions, manual session expiry) can be used. With ``CI=true`` a missing
    broker fails the test instead.
``mosquitto_factory``
    Starts private ``mosquitto`` processes on free ports (temporary config and persistence directory) that a
    test may stop, kill and restart; the system broker on 1883 is never touched. Skips outside CI when the
    binary is missing, fails in CI.
``amqtt_broker``
    A private embedded amqtt broker (MQTT 3.1.1 only) on a free port, for tests of the 3.1.1 fallback.
``topic_root``
    ``mbtest-<uuid>``: the topic root of this run, under which every test that publishes to the session broker
    puts its topics, never the real ``homeassistant/`` and ``meterbridge/`` (on a home owner's machine the
    system Mosquitto is the broker of their Home Assistant). At the end of the session every retained message
    under it is cleared (an empty retained payload on each retained topic seen under ``<root>/#``).
``mqtt_topics``
    ``MqttTopics`` of one test, under the run's root: ``base_topic`` (``<root>/<test>/meterbridge``) and
    ``discovery_prefix`` (``<root>/<test>/homeassistant``), to give to ``MqttSink`` / gateway configs. A test
    that must check the default prefixes runs against a private broker (``mosquitto_factory``) instead.
``postgres_dsn``
    A libpq DSN for 127.0.0.1:5432, database ``test``, user ``postgres``, whose ``search_path`` is a schema
    made for this test alone and dropped afterwards. Skips outside CI (with the reason) when PostgreSQL does
    not answer; fails in CI.

Set ``METERBRIDGE_TEST_MQTT=embedded`` to test against the amqtt fallback although a Mosquitto answers,
``METERBRIDGE_TEST_MQTT=host:port`` or ``METERBRIDGE_TEST_PG=<libpq DSN>`` to point the fixtures at other
services. Tests that use any of these fixtures get the ``services`` marker automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

__all__ = ["MosquittoProcess", "MqttBroker", "MqttTopics", "clear_retained_under", "retained_under"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SYSTEM_MQTT = ("127.0.0.1", 1883)
PG_BASE = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"
MOSQUITTO_BINARIES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
SERVICE_FIXTURES = {
    "mqtt_broker",
    "mosquitto_factory",
    "postgres_dsn",
    "amqtt_broker",
    "topic_root",
    "mqtt_topics",
}
RUN_TOPIC_ROOT = f"mbtest-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------------------------------------- probes


def _mqtt_connect_packet(client_id: str) -> bytes:
    """An MQTT 3.1.1 CONNECT (clean session, keepalive 10 s) for the probe."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x0a" + struct.pack(">H", len(cid)) + cid
    return bytes((0x10, len(body))) + body


def mqtt_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """True when something on ``host:port`` accepts an MQTT CONNECT with a CONNACK (return code 0)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_mqtt_connect_packet(f"meterbridge-probe-{os.getpid()}"))
            reply = b""
            while len(reply) < 4:
                chunk = sock.recv(4 - len(reply))
                if not chunk:
                    return False
                reply += chunk
            sock.sendall(b"\xe0\x00")  # DISCONNECT
            return reply[0] == 0x20 and reply[3] == 0
    except OSError:
        return False


def _env_mqtt() -> tuple[str, int] | None:
    text = os.environ.get("METERBRIDGE_TEST_MQTT")
    if not text or text == "embedded":
        return None
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def pg_base_dsn() -> str:
    return os.environ.get("METERBRIDGE_TEST_PG", PG_BASE)


def postgres_problem() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is a runtime dependency
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(pg_base_dsn(), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL at {pg_base_dsn()!r} does not answer: {first}"
    return None


def mosquitto_binary() -> str | None:
    for name in MOSQUITTO_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_broker(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker on port {port} exited with status {proc.returncode}")
        if mqtt_answers(host, port, timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"broker on {host}:{port} did not answer within {timeout} s")


def _missing(reason: str) -> None:
    """Fail in CI, skip elsewhere (with the reason)."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


# ---------------------------------------------------------------------------------------------- header

_HEADER_STATE: dict[str, str] = {}


def _mqtt_plan() -> str:
    if "mqtt" not in _HEADER_STATE:
        env = _env_mqtt()
        if env is not None:
            _HEADER_STATE["mqtt"] = f"MQTT broker from METERBRIDGE_TEST_MQTT {env[0]}:{env[1]}"
        elif os.environ.get("METERBRIDGE_TEST_MQTT") == "embedded":
            _HEADER_STATE["mqtt"] = (
                "MQTT broker: embedded amqtt (METERBRIDGE_TEST_MQTT=embedded), MQTT 3.1.1 only"
            )
        elif mqtt_answers(*SYSTEM_MQTT):
            _HEADER_STATE["mqtt"] = "MQTT broker: system Mosquitto on 127.0.0.1:1883"
        elif IN_CI:
            _HEADER_STATE["mqtt"] = "MQTT broker: none on 127.0.0.1:1883 (CI=true: MQTT tests will FAIL)"
        else:
            _HEADER_STATE["mqtt"] = (
                "MQTT broker: none on 127.0.0.1:1883; an embedded amqtt broker (MQTT 3.1.1) is started "
                "on a free port, MQTT 5 tests use private mosquitto processes or skip"
            )
    return _HEADER_STATE["mqtt"]


def pytest_report_header(config: pytest.Config) -> list[str]:
    problem = postgres_problem()
    pg = "PostgreSQL: 127.0.0.1:5432 db test answers" if problem is None else f"PostgreSQL: {problem}"
    if problem is not None:
        pg += " (CI=true: PostgreSQL tests will FAIL)" if IN_CI else " (PostgreSQL tests are skipped)"
    binary = mosquitto_binary()
    mosq = (
        f"mosquitto binary: {binary}" if binary else "mosquitto binary: missing (private-broker tests skip)"
    )
    return [_mqtt_plan(), pg, mosq]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)


# ---------------------------------------------------------------------------------------------- MQTT


@dataclass(frozen=True, slots=True)
class MqttBroker:
    """Where a test broker listens. Unpacks as ``host, port``."""

    host: str
    port: int
    kind: str  # "mosquitto", "amqtt" or "external"
    mqtt5: bool

    def __iter__(self) -> Iterator[object]:
        return iter((self.host, self.port))

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def answers(self, timeout: float = 2.0) -> bool:
        return mqtt_answers(self.host, self.port, timeout)


def _start_amqtt(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = tmp / "amqtt.yaml"
    conf.write_text(
        "listeners:\n"
        "  default:\n"
        "    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n"
        "plugins:\n"
        "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: true\n"
    )
    exe = Path(sys.executable).with_name("amqtt")
    cmd = (
        [str(exe), "-c", str(conf)]
        if exe.exists()
        else [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]
    )
    with (tmp / "amqtt.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    _wait_for_broker("127.0.0.1", port, proc)
    return proc, port


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MqttBroker]:
    """The session's MQTT broker (see the module docstring)."""
    env = _env_mqtt()
    if env is not None:
        if not mqtt_answers(*env):
            _missing(f"METERBRIDGE_TEST_MQTT={env[0]}:{env[1]} does not answer MQTT")
        yield MqttBroker(env[0], env[1], "external", mqtt5=True)
        return
    force_embedded = os.environ.get("METERBRIDGE_TEST_MQTT") == "embedded"
    if not force_embedded and mqtt_answers(*SYSTEM_MQTT):
        yield MqttBroker(*SYSTEM_MQTT, kind="mosquitto", mqtt5=True)
        return
    if IN_CI and not force_embedded:
        pytest.fail("CI=true and no MQTT broker answers on 127.0.0.1:1883", pytrace=False)
    proc, port = _start_amqtt(tmp_path_factory.mktemp("amqtt"))
    try:
        yield MqttBroker("127.0.0.1", port, kind="amqtt", mqtt5=False)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def retained_under(host: str, port: int, topic_filter: str, quiet: float = 1.0) -> dict[str, bytes]:
    """Retained messages (non-empty) under ``topic_filter``: subscribe and collect until ``quiet`` s pass
    without one (a broker sends the retained ones right after the SUBACK)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    seen: dict[str, bytes] = {}
    last = [time.monotonic()]
    subscribed = threading.Event()

    def on_message(client: object, userdata: object, message: paho.MQTTMessage) -> None:
        last[0] = time.monotonic()
        if message.retain and message.payload:
            seen[message.topic] = bytes(message.payload)

    def on_subscribe(*args: object) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"mbtest-retained-{uuid.uuid4().hex[:8]}")
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    client.connect(host, port)
    client.loop_start()
    try:
        client.subscribe(topic_filter, qos=0)  # QoS 1: the broker queues only ~1000 of them
        if not subscribed.wait(10):
            raise RuntimeError(f"{host}:{port} did not acknowledge the subscription to {topic_filter!r}")
        while time.monotonic() - last[0] < quiet:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return seen


def clear_retained_under(host: str, port: int, topic_filter: str, passes: int = 20) -> int:
    """Publish an empty retained payload (QoS 1) on every retained topic under ``topic_filter``; how many.

    A subscriber is not sent every retained message of a large tree at once (Mosquitto drops what its queue
    for the client cannot hold), so this scans and clears again until a scan finds none."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    cleared: set[str] = set()
    for _ in range(passes):
        topics = sorted(retained_under(host, port, topic_filter, quiet=0.5))
        if not topics:
            break
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"mbtest-clear-{uuid.uuid4().hex[:8]}")
        client.connect(host, port)
        client.loop_start()
        try:
            infos = [client.publish(topic, b"", qos=1, retain=True) for topic in topics]
            for info in infos:
                info.wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
        cleared.update(topics)
    return len(cleared)


@dataclass(frozen=True, slots=True)
class MqttTopics:
    """The topic prefixes of one test: unique, under the run's ``topic_root``."""

    root: str

    @property
    def base_topic(self) -> str:
        return f"{self.root}/meterbridge"

    @property
    def discovery_prefix(self) -> str:
        return f"{self.root}/homeassistant"

    @property
    def sink_options(self) -> dict[str, str]:
        """Keyword arguments of ``MqttSink``."""
        return {"prefix": self.base_topic, "discovery_prefix": self.discovery_prefix}


@pytest.fixture(scope="session")
def topic_root(mqtt_broker: MqttBroker) -> Iterator[str]:
    """This run's topic root; every retained message under it is cleared at the end of the session."""
    yield RUN_TOPIC_ROOT
    try:
        clear_retained_under(mqtt_broker.host, mqtt_broker.port, f"{RUN_TOPIC_ROOT}/#")
    except (OSError, RuntimeError) as exc:  # the broker went away: nothing left to clear there
        sys.stderr.write(f"could not clear retained messages under {RUN_TOPIC_ROOT}/#: {exc}\n")


@pytest.fixture
def mqtt_topics(topic_root: str) -> MqttTopics:
    """Unique ``base_topic`` / ``discovery_prefix`` of this test under the run's root."""
    return MqttTopics(f"{topic_root}/t{uuid.uuid4().hex[:10]}")


@pytest.fixture
def amqtt_broker(tmp_path: Path) -> Iterator[MqttBroker]:
    """A private embedded amqtt broker (MQTT 3.1.1 only), for tests of the 3.1.1 fallback."""
    proc, port = _start_amqtt(tmp_path)
    try:
        yield MqttBroker("127.0.0.1", port, kind="amqtt", mqtt5=False)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class MosquittoProcess:
    """A private mosquitto on ``port`` with its own config and persistence directory."""

    binary: str
    directory: Path
    port: int
    host: str = "127.0.0.1"
    persistence: bool = True
    extra_config: str = ""
    anonymous: bool = True
    password_file: Path | None = None
    tls: tuple[Path, Path] | None = None  # (certfile, keyfile) for a second, TLS listener on tls_port
    tls_port: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def answers(self, timeout: float = 2.0) -> bool:
        return mqtt_answers(self.host, self.port, timeout)

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self) -> None:
        lines = [
            # as root, mosquitto would switch to the "mosquitto" user, who cannot read the pytest tmp dirs
            *(["user root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            "per_listener_settings false",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
        ]
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        lines += [
            f"listener {self.port} {self.host}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.directory}/",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"log_dest file {self.log_path}",
            "max_queued_messages 100000",
            self.extra_config,
        ]
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {self.host}",
                f"certfile {self.tls[0]}",
                f"keyfile {self.tls[1]}",
            ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> MosquittoProcess:
        if self.running:
            return self
        if self.password_file is not None:  # the probe cannot log in: wait for the port instead
            return self._start_waiting_for_port()
        self.write_config()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _wait_for_broker(self.host, self.port, self.proc)
        except RuntimeError as exc:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            raise RuntimeError(f"{exc}: {err.strip()}") from exc
        return self

    def _start_waiting_for_port(self) -> MosquittoProcess:
        self.write_config()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err.strip()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto on {self.host}:{self.port} did not listen within 15 s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the broker: SIGTERM (it saves its persistence database) or, with ``kill``, SIGKILL."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> MosquittoProcess:
        self.stop()
        return self.start()


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[object]:
    """``mosquitto_factory(persistence=True, extra_config="") -> MosquittoProcess`` (started)."""
    binary = mosquitto_binary()
    if binary is None:
        _missing("the mosquitto binary is not installed (apt-get install mosquitto)")
    assert binary is not None
    started: list[MosquittoProcess] = []

    def factory(
        *,
        persistence: bool = True,
        extra_config: str = "",
        users: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> MosquittoProcess:
        """``users`` turns anonymous access off and writes a password file; ``tls`` adds a TLS listener."""
        directory = tmp_path / f"mosquitto-{len(started)}"
        directory.mkdir()
        password_file = None
        if users:
            password_file = directory / "passwords"
            password_file.touch()
            passwd = shutil.which("mosquitto_passwd")
            if passwd is None:
                _missing("mosquitto_passwd is not installed (it comes with the mosquitto package)")
            assert passwd is not None
            for user, password in users.items():
                subprocess.run(
                    [passwd, "-b", str(password_file), user, password], check=True, capture_output=True
                )
        broker = MosquittoProcess(
            binary,
            directory,
            free_port(),
            persistence=persistence,
            extra_config=extra_config,
            anonymous=not users,
            password_file=password_file,
            tls=tls,
            tls_port=free_port() if tls else None,
        )
        started.append(broker)
        return broker.start()

    yield factory
    for broker in started:
        with contextlib.suppress(Exception):
            broker.stop(kill=True)


# ---------------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def postgres_dsn() -> Iterator[str]:
    """A DSN whose search_path is a fresh schema, dropped after the test."""
    problem = postgres_problem()
    if problem is not None:
        _missing(problem)
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_base_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    base = conninfo_to_dict(pg_base_dsn())
    options = f"{base.pop('options', '') or ''} -c search_path={schema}".strip()
    try:
        yield make_conninfo(**{k: str(v) for k, v in base.items() if v is not None}, options=options)
    finally:
        with psycopg.connect(pg_base_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def optical_port() -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """``async with optical_port(simulator) as reader``: an ``OpticalReader`` on a PTY whose other end the
    E450 simulator's optical port serves; everything is closed on leaving."""
    from meterbridge.drivers.optical import OpticalReader
    from meterbridge.transports import IEC_SIGN_ON, open_pty_pair, open_serial

    @contextlib.asynccontextmanager
    async def port(sim: Any) -> AsyncIterator[Any]:
        master, path = await open_pty_pair(line=IEC_SIGN_ON)
        task = asyncio.create_task(sim.serve_optical(master))
        serial = await open_serial(path, IEC_SIGN_ON)
        try:
            yield OpticalReader(serial, response_timeout=1.5)
        finally:
            await serial.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await master.close()

    return port
