"""Fixtures of the MQTT tests: a unique gateway id (retained topics under the test's unique topic root cleared
afterwards), a message collector, a store, and a running sink."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from meterbridge.sinks.mqtt import MqttSettings, MqttSink
from meterbridge.sinks.store import Store, open_store

WAIT = 30.0  # upper bound for anything to arrive; tests never assert on elapsed time


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Collector:
    """Everything published on some topic filters, in arrival order."""

    client: aiomqtt.Client
    messages: list[Received] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            self.messages.append(Received(str(message.topic), payload, bool(message.retain)))
            self._changed.set()

    def on(self, topic: str) -> list[bytes]:
        return [m.payload for m in self.messages if m.topic == topic]

    async def wait_for(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        async def loop() -> Any:
            while not (result := predicate()):
                self._changed.clear()
                await self._changed.wait()
            return result

        try:
            return await asyncio.wait_for(loop(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; got {len(self.messages)} messages") from None


@contextlib.asynccontextmanager
async def collecting(host: str, port: int, *filters: str) -> AsyncIterator[Collector]:
    async with aiomqtt.Client(host, port, identifier=f"collector-{uuid.uuid4().hex[:8]}") as client:
        for f in filters:
            await client.subscribe(f, qos=1)
        collector = Collector(client)
        task = asyncio.create_task(collector.run())
        try:
            yield collector
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def clear_retained(host: str, port: int, *filters: str) -> None:
    """Publish empty retained payloads on every retained topic under ``filters`` (test hygiene)."""
    async with collecting(host, port, *filters) as col:
        await asyncio.sleep(0.5)
        topics = {m.topic for m in col.messages if m.retain and m.payload}
        for topic in topics:
            await col.client.publish(topic, b"", qos=1, retain=True)


@pytest.fixture
async def gateway_id(mqtt_broker, mqtt_topics) -> AsyncIterator[str]:
    """A unique gateway id; the test's topics (``mqtt_topics``) are cleared of retained messages afterwards."""
    gw = f"t{uuid.uuid4().hex[:10]}"
    yield gw
    with contextlib.suppress(aiomqtt.MqttError):
        await clear_retained(mqtt_broker.host, mqtt_broker.port, f"{mqtt_topics.root}/#")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(str(tmp_path / "gateway.sqlite"))
    yield s
    s.close()


@dataclass
class RunningSink:
    sink: MqttSink
    store: Store
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def drained(self, timeout: float = WAIT) -> None:
        async def loop() -> None:
            while self.store.outbox_depth(self.sink.name) or not self.sink.connected:
                self.sink.wake()
                await asyncio.sleep(0.02)

        await asyncio.wait_for(loop(), timeout)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, WAIT)


@contextlib.asynccontextmanager
async def running_sink(store: Store, settings: MqttSettings, **options: Any) -> AsyncIterator[RunningSink]:
    sink = MqttSink(settings, **options)
    sink.poll_interval = 0.05
    stop = asyncio.Event()
    task = asyncio.create_task(sink.run(store, stop))
    running = RunningSink(sink, store, stop, task)
    try:
        yield running
    finally:
        if not task.done():
            await running.close()
