"""A gateway process for the crash test: a counting source -> pipeline -> SQLite -> MQTT sink.

Run as ``python crash_child.py STORE GATEWAY_ID BROKER_URL START``. The source produces readings of five
meters whose energy counters rise by one per reading, from ``START``, as fast as the pipeline takes them
(with a small pause so the process is killed mid-stream rather than idle). Not a test module itself.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from meterbridge.gateway.config import MqttConfig
from meterbridge.gateway.pipeline import Gateway
from meterbridge.gateway.sources import SourceItem
from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.mqtt import MqttSink
from meterbridge.sinks.sqlite_store import SqliteStore

E_IMPORT = ObisCode.parse("1-0:1.8.0.255")


class CountingSource:
    def __init__(self, name: str, start: int) -> None:
        self.name = name
        self.next = start

    async def stream(self) -> AsyncIterator[SourceItem]:
        while True:
            for _ in range(20):
                yield Reading(self.name, E_IMPORT, self.next, "Wh", datetime.now(UTC))
                self.next += 1
            await asyncio.sleep(0.002)


async def main(store_path: str, gateway_id: str, broker: str, start: int) -> None:
    store = SqliteStore(store_path)
    sink = MqttSink.from_config(MqttConfig(url=broker, discovery=False), gateway_id=gateway_id)
    sink.retry_delay = 0.05
    sink.max_retry_delay = 0.2
    sources = [CountingSource(f"meter{i}", start) for i in range(5)]
    gateway = Gateway(store, sources, [sink], batch_window=0.01)
    await gateway.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
