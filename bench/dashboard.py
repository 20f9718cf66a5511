"""Dashboard plot API vs a bare SQL aggregate, side by side in one run, on one year of 1-minute history.

The store (SQLite, written through ``Store.add``) holds one meter with a voltage and a tariff counter read
every minute for a year (525,600 readings per register). For each range the script times

- the bare aggregate: one ``SELECT (ts - start) / width, count, min, max, avg ... GROUP BY 1`` over the same
  range and the same rows (flagged readings left out, as the plot does) on a read connection, rows fetched
  (the least any server-side downsampling can cost), and
- the dashboard's answer: ``GET /api/meters/{id}/series`` handed to the full Starlette app as an ASGI
  request, timed until the last byte of the body was sent (routing, the token guard and security headers,
  parameter parsing, the queries, the thread hop, JSON encoding: all the server does but parse HTTP).
  The request is made by a minimal ASGI caller (``asgi_get``), not by an HTTP client library: httpx's
  in-process transport spends about 0.5 ms of its own on every request (URL parsing, its models, an
  import it retries each time), which is the client's cost, not the API's,

and prints the medians, their ratio (target: at most 2) and the payload size (target: under 200 kB). The
energy-per-day and per-month answers (counter differences at the boundaries) are timed too, and, for
information, the plot API over real HTTP (uvicorn in a child process, a kept-alive loopback connection).

Run: ``.venv/bin/python bench/dashboard.py`` (``--db PATH`` keeps the generated store for later runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from meterbridge.obis import ObisCode
from meterbridge.readings import Reading
from meterbridge.sinks.history import BAD_COUNTER_QUALITY
from meterbridge.sinks.store import MeterInfo, Store, open_store
from meterbridge.web import create_app

METER = "bench-e450"
VOLTAGE = ObisCode.parse("1-0:32.7.0.255")
T1 = ObisCode.parse("1-0:1.8.1.255")
START = datetime(2025, 1, 1, tzinfo=UTC)
MINUTES = 365 * 24 * 60
END = START + timedelta(minutes=MINUTES)
RANGES = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=31),
    "year": timedelta(days=365),
}
POINTS = 1000
REPEAT = 15


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def build(store: Store) -> None:
    batch: list[Reading] = []
    counter = Decimal("1000000.0")
    started = time.perf_counter()
    for i in range(MINUTES):
        when = START + timedelta(minutes=i)
        counter += Decimal(5 + (i * 7) % 23) / 10
        batch.append(Reading(METER, VOLTAGE, 230.0 + ((i * 7919) % 2000) / 100 - 10, "V", when))
        batch.append(Reading(METER, T1, counter, "Wh", when))
        if len(batch) >= 20_000:
            store.add(batch)
            batch = []
    if batch:
        store.add(batch)
    store.upsert_meter(MeterInfo(id=METER, name="Bench E450", kind="electricity", protocol="optical"))
    print(f"built {2 * MINUTES:,} readings through Store.add in {time.perf_counter() - started:.1f} s")


def bare_aggregate(store: Store, key: str, start: int, end: int, points: int) -> int:
    width = max(1, -(-(end - start) // points))
    with store.read_connection() as conn:
        rows = conn.execute(
            "SELECT (ts - ?) / ? AS b, count(value_real), min(value_real), max(value_real), avg(value_real) "
            "FROM readings WHERE meter_id = ? AND key = ? AND ts >= ? AND ts < ? AND value_real IS NOT NULL "
            "AND (quality & ?) = 0 GROUP BY b ORDER BY b",
            (start, width, METER, key, start, end, BAD_COUNTER_QUALITY),
        ).fetchall()
    return len(rows)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class AsgiResponse:
    def __init__(self, status: int, content: bytes) -> None:
        self.status_code = status
        self.content = content

    def json(self) -> Any:
        return json.loads(self.content)


class AsgiClient:
    """``get(url)``: one GET handed straight to an ASGI app; the response when its body is complete."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def get(self, url: str) -> AsgiResponse:
        path, _, query = url.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 50000),
            "server": ("bench", 80),
        }
        status = 0
        body: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        await self.app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"GET {url}: HTTP {status}: {b''.join(body)[:200]!r}")
        return AsgiResponse(status, b"".join(body))


async def run(store: Store) -> None:
    app = create_app(store)
    key = str(VOLTAGE)
    print()
    print(f"plot API vs bare SQL aggregate, {METER} {key}, points={POINTS}, median of {REPEAT} runs")
    print(
        f"{'range':<7}{'rows':>9}{'points':>8}{'bare SQL ms':>13}{'API ms':>9}{'ratio':>7}{'payload kB':>12}"
    )
    worst_ratio = 0.0
    biggest = 0
    client = AsgiClient(app)
    for name, span in RANGES.items():
        end = ms(END)
        start = end - int(span.total_seconds() * 1000)
        url = f"/api/meters/{METER}/series?key={key}&start={start}&end={end}&points={POINTS}"
        for _ in range(3):  # warm the page cache and both thread pools
            await client.get(url)
            await asyncio.to_thread(bare_aggregate, store, key, start, end, POINTS)
        bare: list[float] = []
        api: list[float] = []
        size = 0
        body: dict[str, object] = {}
        for i in range(REPEAT):
            # alternate which side goes first, so neither always follows the other
            for side in ("bare", "api") if i % 2 else ("api", "bare"):
                t0 = time.perf_counter()
                if side == "bare":
                    await asyncio.to_thread(bare_aggregate, store, key, start, end, POINTS)
                    bare.append(time.perf_counter() - t0)
                else:
                    r = await client.get(url)
                    api.append(time.perf_counter() - t0)
                    size = len(r.content)
                    body = r.json()
        for points in (1, 500, 2000):  # payload bound for every allowed resolution
            r = await client.get(url.replace(f"points={POINTS}", f"points={points}"))
            biggest = max(biggest, len(r.content))
        ratio = median_ms(api) / median_ms(bare)
        worst_ratio = max(worst_ratio, ratio)
        biggest = max(biggest, size)
        t_list = body["t"]
        assert isinstance(t_list, list)
        print(
            f"{name:<7}{body['total']:>9,}{len(t_list):>8}{median_ms(bare):>13.2f}{median_ms(api):>9.2f}"
            f"{ratio:>7.2f}{size / 1000:>12.1f}"
        )
    floor = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        await client.get("/healthz")
        floor.append(time.perf_counter() - t0)
    print(
        f"request floor (GET /healthz: one trivial store call through the same app): {median_ms(floor):.2f} ms"
    )
    print(
        f"largest payload over all ranges and points=1/500/1000/2000: {biggest / 1000:.1f} kB (target < 200)"
    )
    print(f"worst ratio over all ranges: {worst_ratio:.2f} (target <= 2)")
    print()
    print("energy from counter differences (API, median ms)")
    for period, first in (("day", date(2025, 1, 1)), ("month", date(2025, 1, 1))):
        url = f"/api/meters/{METER}/energy?period={period}&start={first}&end=2025-12-31&tz=Europe/Vienna"
        await client.get(url)
        samples = []
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            r = await client.get(url)
            samples.append(time.perf_counter() - t0)
        n = len(r.json()["buckets"])
        print(
            f"  {period:<6}{n:>5} buckets {median_ms(samples):>9.2f} ms  payload {len(r.content) / 1000:.1f} kB"
        )


_SERVE = """
import sys, uvicorn
from meterbridge.sinks.store import open_store
from meterbridge.web import create_app
uvicorn.run(create_app(open_store(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


class HttpClient:
    """``get(url)`` over one kept-alive HTTP/1.1 connection, read with the least client work (no library)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def get(self, url: str) -> AsgiResponse:
        self.writer.write(f"GET {url} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(
            int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")
        )
        return AsgiResponse(int(lines[0].split()[1]), await self.reader.readexactly(length))


async def over_http(store: Store, path: Path) -> None:
    """The same comparison with the app served by uvicorn in a child process and asked over loopback TCP:
    what a browser waits for, less the browser (for information: HTTP parsing and the socket round trip
    are a fixed cost per request that the bare aggregate does not have)."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", _SERVE, str(path), str(port)])
    try:
        for _ in range(200):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the dashboard did not start")
        client = HttpClient(reader, writer)
        key = str(VOLTAGE)
        print()
        print("for information, the same over HTTP (uvicorn in a child process, one kept-alive connection)")
        print(f"{'range':<7}{'bare SQL ms':>13}{'HTTP ms':>9}{'ratio':>7}")
        for name, span in RANGES.items():
            end = ms(END)
            start = end - int(span.total_seconds() * 1000)
            url = f"/api/meters/{METER}/series?key={key}&start={start}&end={end}&points={POINTS}"
            for _ in range(3):
                await client.get(url)
            bare: list[float] = []
            http: list[float] = []
            for i in range(REPEAT):
                for side in ("bare", "http") if i % 2 else ("http", "bare"):
                    t0 = time.perf_counter()
                    if side == "bare":
                        await asyncio.to_thread(bare_aggregate, store, key, start, end, POINTS)
                        bare.append(time.perf_counter() - t0)
                    else:
                        await client.get(url)
                        http.append(time.perf_counter() - t0)
            print(
                f"{name:<7}{median_ms(bare):>13.2f}{median_ms(http):>9.2f}{median_ms(http) / median_ms(bare):>7.2f}"
            )
        writer.close()
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, help="store file to use (built when missing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "bench.sqlite"
        fresh = not path.exists()
        store = open_store(str(path))
        try:
            if fresh:
                build(store)
            asyncio.run(run(store))
            asyncio.run(over_http(store, path))
        finally:
            store.close()


if __name__ == "__main__":
    main()
