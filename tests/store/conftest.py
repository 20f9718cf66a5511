"""The store tests run against both back ends: SQLite in a temporary file and PostgreSQL in a schema of its
own (``postgres_dsn``: skipped outside CI without a server, a failure in CI)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meterbridge.sinks.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = open_store(str(tmp_path / "store.sqlite"))
    else:
        s = open_store(request.getfixturevalue("postgres_dsn"))
    try:
        yield s
    finally:
        s.close()
