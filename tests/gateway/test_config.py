"""Configuration: the example validates and names every field; errors name file line and key path;
secrets come from env/files and are never echoed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from meterbridge.errors import ConfigError
from meterbridge.gateway.config import EXAMPLE, GatewayConfig, iter_model_fields, load_config, parse_config

GUEK = "000102030405060708090A0B0C0D0E0F"
SECRET_ENV = {
    "METERBRIDGE_E450_GUEK": GUEK,
    "METERBRIDGE_E450_PASSWORD": "lls-pass-123",
    "METERBRIDGE_MQTT_PASSWORD": "mqtt-pass-456",
    "METERBRIDGE_WEB_TOKEN": "web-token-789",
}


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    gak = tmp_path / "e450.gak"
    gak.write_text("FFEEDDCCBBAA99887766554433221100\n")
    return EXAMPLE.replace("/etc/meterbridge/e450.gak", str(gak))


def _paths(data: Any, prefix: str = "") -> set[str]:
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            path = f"{prefix}{key}"
            found.add(path)
            found |= _paths(value, path + ".")
    elif isinstance(data, list):
        for item in data:
            found |= _paths(item, prefix[:-1] + "[].")
    return found


def test_example_validates(example: str) -> None:
    config = parse_config(example, "example.yaml")
    assert [m.id for m in config.meters] == ["e450-optical", "e450-dlms", "e450-cii"]
    dlms = config.meters[1]
    assert dlms.keys.encryption is not None and dlms.keys.encryption.get_secret_value() == GUEK
    assert dlms.keys.authentication is not None
    assert dlms.keys.authentication.get_secret_value() == "FFEEDDCCBBAA99887766554433221100"
    assert config.sinks.mqtt is not None and config.sinks.mqtt.password is not None
    assert config.sinks.mqtt.password.get_secret_value() == "mqtt-pass-456"
    assert config.buses[0].scan.address_list() == list(range(251))
    # OBIS keys of overrides are normalised to the canonical form
    assert "1-0:31.7.0.255" in config.meters[0].registers


def test_example_covers_every_field_of_the_model(example: str) -> None:
    named = _paths(yaml.safe_load(example))
    # register overrides are a dict keyed by OBIS code: their fields appear under that key
    named |= {re.sub(r"registers\.[^.]+\.", "registers.", p) for p in named}
    named |= {re.sub(r"plausible\.[^.]+\.", "plausible.", p) for p in named}
    missing = [p for p in iter_model_fields(GatewayConfig) if p not in named]
    assert not missing, f"EXAMPLE does not show: {missing}"


def test_secrets_are_never_echoed(example: str) -> None:
    config = parse_config(example)
    text = repr(config) + str(config.model_dump()) + config.model_dump_json()
    for secret in SECRET_ENV.values():
        assert secret not in text


def test_defaults_of_an_empty_file() -> None:
    config = parse_config("")
    assert config.store.url == "var/meterbridge.sqlite"
    assert (config.web.host, config.web.port) == ("127.0.0.1", 8450)
    assert config.quality.voltage.min == 207 and config.quality.frequency.max == 51
    assert config.sinks.mqtt is None


BAD = """\
name: house
meters:
  - id: a
    protocol: optical
    transport: /dev/ttyUSB0
    interval: -3
  - id: b
    protocol: modbus
    transport: http://x
    keys:
      encryption: "secret-not-hex-zz"
buses:
  - id: c
    transport: tcp://127.0.0.1:10001
    scna: {}
sinks:
  mqtt:
    url: http://broker
"""


def test_errors_name_line_path_and_expectation() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, "bad.yaml")
    text = str(info.value)
    lines = text.splitlines()
    assert "bad.yaml:6 meters[0].interval: Input should be greater than 0 (got -3)" in lines
    assert any(line.startswith("bad.yaml:8 meters[1].protocol: Input should be 'optical'") for line in lines)
    assert any(
        line.startswith("bad.yaml:9 meters[1].transport:") and "unknown scheme 'http'" in line
        for line in lines
    )
    assert any(
        line.startswith("bad.yaml:11 meters[1].keys.encryption: a DLMS key must be 32 hex") for line in lines
    )
    assert "bad.yaml:15 buses[0].scna: unknown key" in text
    assert any(line.startswith("bad.yaml:18 sinks.mqtt.url:") for line in lines)
    assert "secret-not-hex-zz" not in text
    assert info.value.where == "bad.yaml:6 meters[0].interval"


def test_missing_env_secret_and_bad_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    text = "web:\n  token: {env: NOPE_NOT_SET}\n"
    with pytest.raises(
        ConfigError, match=r"x.yaml:2 web.token: environment variable NOPE_NOT_SET is not set"
    ):
        parse_config(text, "x.yaml")
    with pytest.raises(ConfigError, match=r"^x.yaml:3: not valid YAML"):
        parse_config("a: 1\nb: [1, 2\nc: 3\n", "x.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_config("- 1\n- 2\n", "x.yaml")


def test_cross_field_rules() -> None:
    dup = "meters:\n  - {id: a, protocol: push, transport: pty:///tmp/x}\nbuses:\n  - {id: a, transport: tcp://h:1}\n"
    with pytest.raises(ConfigError, match="already used"):
        parse_config(dup)
    lls = "meters:\n  - id: a\n    protocol: dlms\n    transport: tcp://h:4059\n    authentication: lls\n"
    with pytest.raises(ConfigError, match=r":2 meters\[0\]: authentication: lls needs keys.password"):
        parse_config(lls, "f")
    addr = "buses:\n  - id: b\n    transport: tcp://h:1\n    scan: {addresses: '5-300'}\n"
    with pytest.raises(
        ConfigError, match=r":4 buses\[0\].scan.addresses: '5-300': primary addresses are 0-250"
    ):
        parse_config(addr, "f")
    both = "buses:\n  - id: b\n    transport: tcp://h:1\n    meters:\n      - {address: 1, secondary: '12345678'}\n"
    with pytest.raises(ConfigError, match="exactly one of address"):
        parse_config(both)
    obis = "meters:\n  - id: a\n    protocol: push\n    transport: pty:///x\n    registers: {'not-obis': {unit: A}}\n"
    with pytest.raises(ConfigError, match="neither an OBIS code nor an M-Bus key"):
        parse_config(obis)


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store: {url: sqlite:///x.sqlite, retention_days: 30}\n")
    assert load_config(path).store.retention_days == 30
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_passwords_in_urls_are_not_echoed_in_errors() -> None:
    text = (
        "sinks:\n  mqtt:\n    url: http://user:hunter2secret@broker\nstore:\n  url: mysql://a:pw9secret@h/x\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "f.yaml")
    assert "hunter2secret" not in str(info.value) and "pw9secret" not in str(info.value)
    assert "f.yaml:3 sinks.mqtt.url: 'http://user:***@broker'" in str(info.value)


async def test_a_buss_extra_timeout_reaches_its_master() -> None:
    import asyncio
    import types

    from meterbridge.gateway.sources import build_sources

    made: list[dict[str, Any]] = []

    class Master:
        def __init__(self, transport: Any, **options: Any) -> None:
            made.append(options)
            raise RuntimeError("enough")

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for extra, expected in (
            ("", 0.1),
            ("    extra_timeout: 0.35\n", 0.35),
            ("    extra_timeout: 0\n", 0.0),
        ):
            config = parse_config(
                f"buses:\n  - id: b\n    transport: tcp://127.0.0.1:{port}\n    retries: 4\n{extra}"
            )
            [source] = build_sources(config)
            source.driver = types.SimpleNamespace(MBusMaster=Master)  # type: ignore[attr-defined]
            with pytest.raises(RuntimeError, match="enough"):
                await anext(source.stream())
            assert made[-1]["extra_timeout"] == expected and made[-1]["retries"] == 4
        with pytest.raises(ConfigError, match="timeout"):  # the old key is refused, not ignored
            parse_config("buses:\n  - id: b\n    transport: tcp://127.0.0.1:1\n    timeout: 0.5\n")
    finally:
        server.close()
        await server.wait_closed()
