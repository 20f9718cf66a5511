"""A simulated bus behind a real TCP port, served from a thread (for CLI and third-party masters)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from meterbridge.simulator.mbus import MBusSimulator, build_bus


@pytest.fixture
def bus() -> Iterator[tuple[MBusSimulator, int]]:
    """Three meters (meter 3 shares address 2) behind a TCP port, served from a thread."""
    sim = build_bus(3, seed=21, primary=[1, 2, 2], multi_telegram=[0])
    ready = threading.Event()
    state: dict[str, object] = {}

    def serve() -> None:
        async def main() -> None:
            from meterbridge.transports.sockets import serve_tcp

            server = await serve_tcp(sim.serve, "127.0.0.1", 0)
            stop = asyncio.Event()
            state["port"], state["stop"], state["loop"] = server.port, stop, asyncio.get_running_loop()
            ready.set()
            await stop.wait()
            await server.close()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield sim, int(state["port"])  # type: ignore[call-overload]
    loop = state["loop"]
    loop.call_soon_threadsafe(state["stop"].set)  # type: ignore[attr-defined]
    thread.join(10)
