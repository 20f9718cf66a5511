"""The shared service fixtures of tests/conftest.py do what they promise."""

from __future__ import annotations

import psycopg
import pytest


def test_mqtt_broker_answers(mqtt_broker) -> None:
    host, port = mqtt_broker
    assert mqtt_broker.answers()
    assert (host, port) == (mqtt_broker.host, mqtt_broker.port)
    assert mqtt_broker.url == f"mqtt://{host}:{port}"


def test_private_mosquitto_stops_and_restarts_on_the_same_port(mosquitto_factory) -> None:
    broker = mosquitto_factory()
    assert broker.port != 1883
    assert broker.answers()
    broker.stop()
    assert not broker.answers(timeout=0.5)
    broker.start()
    assert broker.answers()
    broker.stop(kill=True)
    assert not broker.running


def test_postgres_dsn_is_an_isolated_schema(postgres_dsn: str) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()
        assert schema is not None and schema[0].startswith("t_")
        conn.execute("CREATE TABLE probe (x int)")
        conn.execute("INSERT INTO probe VALUES (1)")
        assert conn.execute("SELECT count(*) FROM probe").fetchone() == (1,)


@pytest.mark.parametrize("round_", [1, 2])
def test_each_test_gets_a_fresh_schema(postgres_dsn: str, round_: int) -> None:
    with psycopg.connect(postgres_dsn) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
        assert found == (0,)
        conn.execute("CREATE TABLE probe (x int)")
