"""``meterbridge backup`` / ``meterbridge restore``: configuration and inventory, secrets only when asked."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import meterbridge.cli.backup as backup_module
from meterbridge.cli.app import app
from meterbridge.cli.backup import (
    BackupError,
    build_backup,
    find_secrets,
    redact,
    reinsert,
    restore_text,
)
from meterbridge.gateway.config import EXAMPLE, parse_config
from meterbridge.sinks.store import MeterInfo, open_store

GUEK = "000102030405060708090A0B0C0D0E0F"
GAK = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
MQTT_PASSWORD = 'pa"ss: wörd'
PASSPHRASE = "correct horse battery"

CONFIG = f"""\
# my gateway (this comment must survive)
name: flat-7
meters:
  - id: e450-cii
    name: House meter
    protocol: push
    transport: serial:///dev/ttyAMA0
    keys:
      encryption: {GUEK}   # the GUEK from the utility
      authentication: {{file: gak.txt}}
  - id: e450-dlms
    protocol: dlms
    transport: tcp://192.0.2.10:4059
    wrapper: true
    authentication: lls
    keys: {{password: {{env: MB_TEST_LLS}}}}
sinks:
  mqtt:
    url: mqtts://broker.example:8883
    username: meterbridge
    password: {json.dumps(MQTT_PASSWORD)}
    tls:
      ca_file: /etc/ssl/certs/ca-certificates.crt
      key_file: /etc/meterbridge/client.key
store:
  url: {{store}}
"""


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration with inline, file and env secrets, and a store with two meters."""
    monkeypatch.chdir(tmp_path)  # {file: gak.txt} is read from the working directory, as the gateway does
    store_path = tmp_path / "gw.sqlite"
    config = tmp_path / "meterbridge.yaml"
    config.write_text(CONFIG.replace("{store}", str(store_path)))
    (tmp_path / "gak.txt").write_text(GAK + "\n")
    monkeypatch.setenv("MB_TEST_LLS", "lls-secret")
    with open_store(str(store_path)) as store:
        store.upsert_meter(MeterInfo(id="e450-cii", name="House meter", kind="electricity", protocol="push"))
        store.touch_meter("e450-cii", datetime(2026, 11, 28, 9, 0, tzinfo=UTC))
        store.upsert_meter(MeterInfo(id="heat-1", kind="heat", protocol="mbus", address="5", serial="1234"))
    return config


def test_find_secrets() -> None:
    secrets = {s.path: s for s in find_secrets(CONFIG)}
    assert set(secrets) == {
        "meters[0].keys.encryption",
        "meters[0].keys.authentication",
        "meters[1].keys.password",
        "sinks.mqtt.password",
    }
    assert (secrets["meters[0].keys.encryption"].source, secrets["meters[0].keys.encryption"].value) == (
        "inline",
        GUEK,
    )
    assert (
        secrets["meters[0].keys.authentication"].source,
        secrets["meters[0].keys.authentication"].ref,
    ) == (
        "file",
        "gak.txt",
    )
    assert (secrets["meters[1].keys.password"].source, secrets["meters[1].keys.password"].ref) == (
        "env",
        "MB_TEST_LLS",
    )
    assert secrets["sinks.mqtt.password"].value == MQTT_PASSWORD
    assert GUEK not in repr(list(secrets.values()))


def test_find_secrets_in_the_documented_example() -> None:
    secrets = {s.path: s.source for s in find_secrets(EXAMPLE)}
    assert secrets["meters[2].keys.encryption"] == "inline"
    assert secrets["meters[1].keys.encryption"] == "env"
    assert secrets["meters[1].keys.authentication"] == "file"
    assert "sinks.mqtt.password" in secrets
    assert not any(path.endswith("key_file") for path in secrets)
    redacted = redact(EXAMPLE, find_secrets(EXAMPLE))
    assert "000102030405060708090A0B0C0D0E0F" not in redacted
    assert redacted.count("\n") == EXAMPLE.count("\n")  # comments and layout stay


def test_secret_of_an_unexpected_shape_is_refused() -> None:
    with pytest.raises(BackupError, match=r"meters\[0\].keys.encryption"):
        find_secrets("meters:\n  - keys:\n      encryption: [1, 2]\n")
    with pytest.raises(BackupError, match="not valid YAML"):
        find_secrets("a: [\n")


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40).filter(lambda t: t.strip() == t and "\x00" not in t))
def test_redact_then_reinsert_gives_the_secret_back(secret: str) -> None:
    text = (
        f"sinks:\n  mqtt:\n    url: mqtt://x\n    password: {json.dumps(secret)}  # c\nweb:\n  token: t0k3n\n"
    )
    secrets = find_secrets(text)
    redacted = redact(text, secrets)
    assert "password: null  # c" in redacted
    back = reinsert(redacted, {s.path: json.dumps(s.value) for s in secrets if s.value is not None})
    assert reinsert(redacted, {s.path: s.raw for s in secrets if s.raw is not None}) == text
    import yaml

    assert yaml.safe_load(back) == yaml.safe_load(text)


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)


def test_backup_without_keys_leaves_every_secret_out(gateway: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    result = run("backup", "--config", str(gateway), "--output", str(out))
    assert result.exit_code == 0, result.output
    assert "2 meters" in result.output
    data = out.read_bytes()
    for secret in (GUEK, GAK, "lls-secret", "wörd"):
        assert secret.encode() not in data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    body = json.loads(data)
    assert body["secrets"] is None
    assert sorted(body["redacted"]) == ["meters[0].keys.encryption", "sinks.mqtt.password"]
    assert "# my gateway (this comment must survive)" in body["config"]
    assert {m["id"] for m in body["inventory"]} == {"e450-cii", "heat-1"}

    # restore on a "new machine": the configuration without secrets, the inventory in a new store
    new_store = tmp_path / "new.sqlite"
    target = tmp_path / "restored.yaml"
    result = run("restore", str(out), "--config", str(target), "--store", str(new_store))
    assert result.exit_code == 0, result.output
    assert "2 secrets left empty" in result.output
    restored = parse_config(target.read_text())
    assert restored.meters[0].keys is not None and restored.meters[0].keys.encryption is None
    with open_store(str(new_store)) as store:
        meters = {m.id: m for m in store.meters()}
    assert meters["heat-1"].serial == "1234"
    assert meters["heat-1"].kind == "heat"
    assert meters["e450-cii"].last_seen == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def test_backup_with_keys_round_trips_every_secret(
    gateway: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "b.json"
    monkeypatch.setenv("MB_PASS", PASSPHRASE)
    result = run(
        "backup", "-c", str(gateway), "-o", str(out), "--include-keys", "--passphrase-env", "MB_PASS"
    )
    assert result.exit_code == 0, result.output
    assert "4 secrets encrypted" in result.output
    data = out.read_bytes()
    for secret in (GUEK, GAK, "lls-secret", "wörd", PASSPHRASE):
        assert secret.encode() not in data
    body = json.loads(data)
    assert body["secrets"]["cipher"] == "AES-256-GCM"
    assert body["secrets"]["kdf"]["name"] == "scrypt"

    restore_dir = tmp_path / "new"
    restore_dir.mkdir()
    target = restore_dir / "meterbridge.yaml"
    monkeypatch.delenv("MB_TEST_LLS")
    monkeypatch.chdir(restore_dir)
    result = run(
        "restore",
        str(out),
        "-c",
        str(target),
        "--store",
        str(restore_dir / "s.sqlite"),
        "--passphrase-env",
        "MB_PASS",
    )
    assert result.exit_code == 0, result.output
    assert "set the environment variable MB_TEST_LLS" in result.output
    assert "lls-secret" not in result.output and GAK not in result.output
    assert (restore_dir / "gak.txt").read_text().strip() == GAK
    assert stat.S_IMODE((restore_dir / "gak.txt").stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # inline secrets are back in place: the text is the original, comments included
    assert target.read_text() == gateway.read_text()


def test_restore_with_a_wrong_passphrase_writes_nothing(gateway: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "b.json"
    monkeypatch.setenv("MB_PASS", PASSPHRASE)
    assert (
        run(
            "backup", "-c", str(gateway), "-o", str(out), "--include-keys", "--passphrase-env", "MB_PASS"
        ).exit_code
        == 0
    )
    monkeypatch.setenv("MB_PASS", "not the passphrase")
    target = tmp_path / "r.yaml"
    result = run("restore", str(out), "-c", str(target), "--passphrase-env", "MB_PASS")
    assert result.exit_code == 1
    assert "wrong passphrase" in result.output
    assert not target.exists()


def test_an_altered_backup_does_not_open(gateway: Path) -> None:
    text = gateway.read_text()
    secrets = backup_module.read_secret_values(find_secrets(text))
    body = build_backup(text, [], config_name="x", secrets=secrets, passphrase=PASSPHRASE, scrypt_n=2**12)
    assert restore_text(body, PASSPHRASE).config_text == text
    tampered = dict(body, config=body["config"].replace("broker.example", "evil.example"))
    with pytest.raises(BackupError, match="altered"):
        restore_text(tampered, PASSPHRASE)
    moved = dict(body, inventory=[{"id": "x"}])
    with pytest.raises(BackupError, match="altered"):
        restore_text(moved, PASSPHRASE)


def test_short_passphrase_and_missing_env_are_refused(gateway: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MB_PASS", "short")
    result = run(
        "backup",
        "-c",
        str(gateway),
        "-o",
        str(tmp_path / "b.json"),
        "--include-keys",
        "--passphrase-env",
        "MB_PASS",
    )
    assert result.exit_code == 1
    assert "at least 8" in result.output
    monkeypatch.delenv("MB_TEST_LLS")
    monkeypatch.setenv("MB_PASS", PASSPHRASE)
    result = run(
        "backup",
        "-c",
        str(gateway),
        "-o",
        str(tmp_path / "b.json"),
        "--include-keys",
        "--passphrase-env",
        "MB_PASS",
    )
    assert result.exit_code == 1
    assert "MB_TEST_LLS is not set" in result.output


def test_restore_refuses_other_files_and_existing_configs(gateway: Path, tmp_path: Path) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text('{"format": "something else"}')
    assert "not a meterbridge backup" in run("restore", str(bogus), "-c", str(tmp_path / "r.yaml")).output
    out = tmp_path / "b.json"
    assert run("backup", "-c", str(gateway), "-o", str(out)).exit_code == 0
    result = run("restore", str(out), "-c", str(gateway))
    assert result.exit_code == 1
    assert "exists" in result.output


def test_prompted_passphrase(gateway: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    result = run(
        "backup", "-c", str(gateway), "-o", str(out), "--include-keys", input=f"{PASSPHRASE}\n{PASSPHRASE}\n"
    )
    assert result.exit_code == 0, result.output
    target = tmp_path / "r.yaml"
    result = run(
        "restore",
        str(out),
        "-c",
        str(target),
        "--store",
        str(tmp_path / "s2.sqlite"),
        input=f"{PASSPHRASE}\n",
    )
    assert result.exit_code == 0, result.output
    assert GUEK in target.read_text()
    assert os.environ.get("MB_TEST_LLS") == "lls-secret"


def test_backup_without_a_store_makes_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("name: bare\nstore:\n  url: var/none.sqlite\n")
    result = run("backup", "-c", str(config), "-o", str(tmp_path / "b.json"))
    assert result.exit_code == 0, result.output
    assert "0 meters" in result.output
    assert not (tmp_path / "var").exists()
