"""MqttSink built from the gateway configuration's ``sinks.mqtt`` section."""

from __future__ import annotations

from meterbridge.gateway.config import parse_config
from meterbridge.sinks.mqtt import MqttSink
from meterbridge.sinks.store import MeterInfo

CONFIG = """
name: house-1
meters:
  - id: e450
    protocol: push
    transport: serial:///dev/ttyUSB0
sinks:
  mqtt:
    url: mqtts://broker.example:8884
    client_id: gw-house
    username: meterbridge
    password: "not in any repr"
    tls:
      ca_file: /etc/ssl/certs/ca-certificates.crt
    base_topic: home
    legacy_topics: true
    discovery_prefix: ha
"""


def test_from_config_reads_every_mqtt_option() -> None:
    config = parse_config(CONFIG)
    assert config.sinks.mqtt is not None
    sink = MqttSink.from_config(config.sinks.mqtt, gateway_id=config.name, meters=config.meters)
    s = sink.settings
    assert (s.host, s.port, s.tls, s.client_id) == ("broker.example", 8884, True, "gw-house")
    assert (s.username, s.password) == ("meterbridge", "not in any repr")
    assert s.ca_file == "/etc/ssl/certs/ca-certificates.crt"
    assert "not in any repr" not in repr(s)
    assert sink.layout.status == "home/house_1/status"
    assert sink.layout.discovery(sink.layout.gateway_device_id) == "ha/device/meterbridge_house_1/config"
    assert sink.legacy_topics is True
    assert sink.configured == frozenset({"e450"})


def test_from_config_takes_meter_infos_and_no_meters_means_no_removal() -> None:
    config = parse_config(CONFIG)
    assert config.sinks.mqtt is not None
    infos = [MeterInfo(id="e450", kind="electricity"), MeterInfo(id="w1", kind="water", protocol="mbus")]
    sink = MqttSink.from_config(config.sinks.mqtt, gateway_id="gw", meters=infos)
    assert sink.configured == frozenset({"e450", "w1"})
    assert [p.kind for p in sink._problem_set(infos[1])] == ["not_answering", "bad_readings"]
    assert MqttSink.from_config(config.sinks.mqtt, gateway_id="gw").configured is None


def test_tls_follows_the_url_scheme() -> None:
    plain = parse_config(CONFIG.replace("mqtts://broker.example:8884", "mqtt://broker.example"))
    assert plain.sinks.mqtt is not None
    settings = MqttSink.from_config(plain.sinks.mqtt, gateway_id="gw").settings
    assert (settings.tls, settings.port, settings.ssl_context()) == (False, 1883, None)


BUS_CONFIG = """
name: house-2
meters:
  - id: e450
    protocol: push
    transport: serial:///dev/ttyUSB0
    interval: 10
buses:
  - id: cellar
    transport: serial:///dev/ttyUSB1
    interval: 900
    meters:
      - address: 5
        id: heat-1
sinks:
  mqtt:
    url: mqtt://127.0.0.1
"""


def test_from_whole_config_sets_expiry_per_meter_and_keeps_scanned_bus_meters() -> None:
    config = parse_config(BUS_CONFIG)
    assert config.sinks.mqtt is not None
    sink = MqttSink.from_config(config.sinks.mqtt, gateway_id=config.name, config=config)
    assert sink.configured == frozenset({"e450", "heat-1"})
    assert sink.expire_after_by_meter == {"e450": 60, "heat-1": 2700}  # three intervals, at least 60 s
    assert sink.expire_after == 2700  # meters a scan finds: three intervals of the slowest bus
    assert sink.keep_protocols == frozenset({"mbus"})
    sink._meters["found-by-scan"] = MeterInfo(id="found-by-scan", protocol="mbus")
    sink._meters["old-meter"] = MeterInfo(id="old-meter", protocol="push")
    assert sink._wanted("found-by-scan")
    assert sink._wanted("heat-1")
    assert not sink._wanted("old-meter")
    no_scan = parse_config(
        BUS_CONFIG.replace("    interval: 900\n", "    interval: 900\n    scan: {mode: none}\n")
    )
    assert no_scan.sinks.mqtt is not None
    strict = MqttSink.from_config(no_scan.sinks.mqtt, gateway_id="gw", config=no_scan)
    assert strict.keep_protocols == frozenset()
