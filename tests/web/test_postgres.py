"""The dashboard's API on a PostgreSQL store answers exactly as on SQLite for the same data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from meterbridge.web import create_app

pytestmark = pytest.mark.services

BASE = datetime(2026, 3, 1, tzinfo=UTC)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


URLS = [
    f"/api/meters/e450/series?key=1-0:32.7.0.255&start={ms(BASE)}&end={ms(BASE + timedelta(days=10))}&points=100",
    f"/api/meters/e450/series?key=1-0:1.8.1.255&start={ms(BASE + timedelta(days=3))}&end={ms(BASE + timedelta(days=4))}",
    f"/api/meters/e450/series.csv?key=1-0:1.8.1.255&start={ms(BASE + timedelta(days=3))}&end={ms(BASE + timedelta(days=4))}",
    "/api/meters/e450/energy?period=day&start=2026-02-28&end=2026-03-12&tz=Europe/Vienna",
    "/api/meters/e450/energy?period=month&start=2026-01-01&end=2026-03-31",
    "/api/meters/e450",
    "/api/events?meter=e450",
    "/api/events?kind=bus_collisions",
    "/api/bus",
]


def same(a: Any, b: Any, path: str = "") -> None:
    """Equal, except averages which may differ in the last bits between the two databases."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and path.rsplit(".", 1)[-1].startswith("avg"):
        assert a == pytest.approx(b, abs=1.01e-6), path  # averages are rounded to 6 decimals
    else:
        assert a == b, path


async def test_postgres_answers_like_sqlite(known: Any, known_pg: Any) -> None:
    lite, pg = create_app(known.store), create_app(known_pg.store)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=lite), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=pg), base_url="http://b") as b,
    ):
        for url in URLS:
            ra, rb = await a.get(url), await b.get(url)
            assert ra.status_code == rb.status_code == 200, (url, rb.text[:300])
            if url.split("?")[0].endswith(".csv"):
                assert ra.text == rb.text, url
                continue
            da, db = ra.json(), rb.json()
            if url.startswith("/api/bus"):
                for bus in da["buses"] + db["buses"]:
                    for m in bus["meters"]:
                        m.pop("last_seen"), m.pop("readings_24h")
            if url == "/api/meters/e450":
                da.pop("state_detail"), db.pop("state_detail")
            same(da, db, url)
