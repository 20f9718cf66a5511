"""``meterbridge backup`` and ``meterbridge restore``: the configuration and the meter inventory in one file.

The backup is a JSON document::

    {"format": "meterbridge-backup", "version": 1, "created": "...", "software": "0.1.0",
     "config_name": "meterbridge.yaml", "config": "<the YAML text, secrets replaced by null>",
     "redacted": ["meters[2].keys.encryption", ...], "inventory": [{"id": ..., ...}, ...],
     "secrets": null | {"kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<b64>"},
                        "cipher": "AES-256-GCM", "nonce": "<b64>", "data": "<b64>"}}

The configuration keeps its text (comments, order); every secret written inline (DLMS keys, LLS and MQTT
passwords, the web token) is replaced by ``null``. ``{env: NAME}`` and ``{file: PATH}`` references stay as
they are. Secrets are left out unless ``--include-keys`` is given; then the inline ones *and* the values the
references point to are encrypted with a passphrase: scrypt derives a 256-bit key, AES-256-GCM encrypts,
and the authenticated data binds the secrets to this backup's configuration and inventory (a change to
either makes decryption fail). A restore puts inline secrets back in place, writes missing ``{file: ...}``
secrets (mode 0600), and names the environment variables to set; it never prints a secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from meterbridge.cli.app import app
from meterbridge.errors import MeterbridgeError

__all__ = [
    "BACKUP_FORMAT",
    "BackupError",
    "Secret",
    "build_backup",
    "decrypt_secrets",
    "encrypt_secrets",
    "find_secrets",
    "redact",
    "reinsert",
    "restore_text",
]

BACKUP_FORMAT: Final = "meterbridge-backup"
BACKUP_VERSION: Final = 1
SCRYPT_N: Final = 2**15
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_SECRET_NAMES: Final = frozenset({"password", "token", "secret", "passphrase", "key"})
_MIN_PASSPHRASE: Final = 8


class BackupError(MeterbridgeError):
    """A backup cannot be made or restored (bad file, wrong passphrase, altered content)."""


@dataclass(frozen=True, slots=True)
class Secret:
    """One secret of the configuration: where (key path), how it is given, and (when read) its value."""

    path: str
    source: str  # "inline", "env" or "file"
    ref: str | None  # the variable name or file path
    start: int  # span of the value in the YAML text
    end: int
    value: str | None = None
    raw: str | None = None  # the value as written in the YAML (quotes and all), for an exact restore

    def __repr__(self) -> str:  # never the value
        return f"Secret(path={self.path!r}, source={self.source!r}, ref={self.ref!r})"


# ---------------------------------------------------------------------------------------------- YAML


def _is_secret(name: str, parent: str | None) -> bool:
    if name.endswith("_file"):
        return False  # a path to a certificate or key file, not a secret
    return parent == "keys" or name in _SECRET_NAMES or name.endswith("_key")


def _compose(text: str) -> Any:
    import yaml

    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise BackupError(f"the configuration is not valid YAML: {exc}") from None


def find_secrets(text: str) -> list[Secret]:
    """Every secret-bearing value of the YAML ``text`` (inline scalars, ``{env: ...}``, ``{file: ...}``)."""
    import yaml

    root = _compose(text)
    found: list[Secret] = []

    def walk(node: Any, path: str, name: str | None, parent: str | None) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                child = f"{path}.{key}" if path else key
                if _is_secret(key, name) and not (isinstance(value_node, yaml.MappingNode) and key == "keys"):
                    found.extend(_secret_of(value_node, child))
                else:
                    walk(value_node, child, key, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]", name, parent)

    def _secret_of(node: Any, path: str) -> list[Secret]:
        start, end = node.start_mark.index, node.end_mark.index
        if isinstance(node, yaml.ScalarNode):
            if (
                node.tag == "tag:yaml.org,2002:null"
            ):  # a plain null, ~ or nothing; a quoted "null" is a string
                return []
            return [Secret(path, "inline", None, start, end, str(node.value), text[start:end])]
        if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
            (k, v) = node.value[0]
            if k.value in ("env", "file") and isinstance(v, yaml.ScalarNode):
                return [Secret(path, str(k.value), str(v.value), start, end)]
        raise BackupError(f"{path}: a secret must be a string, {{env: NAME}} or {{file: PATH}}")

    if root is not None:
        walk(root, "", None, None)
    return found


def redact(text: str, secrets: list[Secret]) -> str:
    """``text`` with every inline secret replaced by ``null``."""
    out = text
    for s in sorted((s for s in secrets if s.source == "inline"), key=lambda s: s.start, reverse=True):
        out = out[: s.start] + "null" + out[s.end :]
    return out


def reinsert(text: str, values: dict[str, str]) -> str:
    """Put YAML fragments (by key path) in place of the ``null`` of redacted secrets in ``text``."""
    import yaml

    root = _compose(text)
    spans: dict[str, tuple[int, int]] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                child = f"{path}.{key_node.value}" if path else str(key_node.value)
                if child in values:
                    spans[child] = (value_node.start_mark.index, value_node.end_mark.index)
                else:
                    walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    walk(root, "")
    missing = sorted(set(values) - set(spans))
    if missing:
        raise BackupError(f"the configuration has no place for the secrets of {', '.join(missing)}")
    out = text
    for path, (start, end) in sorted(spans.items(), key=lambda item: item[1][0], reverse=True):
        out = out[:start] + values[path] + out[end:]
    return out


def read_secret_values(secrets: list[Secret]) -> list[Secret]:
    """The secrets with their values: inline as written, env from the environment, file from the file."""
    out = []
    for s in secrets:
        value = s.value
        if s.source == "env" and s.ref is not None:
            if s.ref not in os.environ:
                raise BackupError(
                    f"{s.path}: environment variable {s.ref} is not set (needed by --include-keys)"
                )
            value = os.environ[s.ref].strip()
        elif s.source == "file":
            path = Path(str(s.ref)).expanduser()  # relative to the working directory, as the gateway reads it
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise BackupError(f"{s.path}: cannot read secret file {s.ref}: {exc.strerror}") from None
        out.append(Secret(s.path, s.source, s.ref, s.start, s.end, value, s.raw))
    return out


# ---------------------------------------------------------------------------------------------- crypto


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise BackupError(f"backup: {what} is missing")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise BackupError(f"backup: {what} is not base64") from None


def _aad(config_text: str, inventory: list[dict[str, Any]]) -> bytes:
    digest = hashlib.sha256()
    digest.update(config_text.encode())
    digest.update(json.dumps(inventory, sort_keys=True, separators=(",", ":")).encode())
    return f"{BACKUP_FORMAT}/{BACKUP_VERSION}\n".encode() + digest.digest()


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def encrypt_secrets(
    secrets: list[Secret], passphrase: str, aad: bytes, *, n: int = SCRYPT_N
) -> dict[str, Any]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(passphrase) < _MIN_PASSPHRASE:
        raise BackupError(f"the passphrase must have at least {_MIN_PASSPHRASE} characters")
    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps(
        [{"path": s.path, "source": s.source, "ref": s.ref, "value": s.value, "raw": s.raw} for s in secrets]
    ).encode()
    key = _derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    return {
        "kdf": {"name": "scrypt", "n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        "cipher": "AES-256-GCM",
        "nonce": _b64(nonce),
        "data": _b64(AESGCM(key).encrypt(nonce, plain, aad)),
    }


def decrypt_secrets(box: dict[str, Any], passphrase: str, aad: bytes) -> list[dict[str, Any]]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kdf = box.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or box.get("cipher") != "AES-256-GCM":
        raise BackupError("backup: secrets use an unknown key derivation or cipher")
    params = [kdf.get(k) for k in ("n", "r", "p")]
    if not all(isinstance(v, int) and 0 < v <= 2**20 for v in params):
        raise BackupError("backup: scrypt parameters are missing or out of range")
    n, r, p = (int(v) for v in params)  # type: ignore[arg-type]
    key = _derive(passphrase, _unb64(kdf.get("salt"), "salt"), n, r, p)
    try:
        plain = AESGCM(key).decrypt(_unb64(box.get("nonce"), "nonce"), _unb64(box.get("data"), "data"), aad)
    except InvalidTag:
        raise BackupError("wrong passphrase, or the backup was altered after it was made") from None
    except ValueError as exc:
        raise BackupError(f"backup: secrets cannot be opened: {exc}") from None
    entries = json.loads(plain)
    if not isinstance(entries, list):
        raise BackupError("backup: secrets are not a list")
    return entries


# ---------------------------------------------------------------------------------------------- documents


def _meter_dict(meter: Any) -> dict[str, Any]:
    fields = ("id", "name", "kind", "protocol", "address", "serial", "manufacturer", "firmware", "last_seen")
    out = {f: getattr(meter, f) for f in fields}
    if out["last_seen"] is not None:
        out["last_seen"] = out["last_seen"].isoformat()
    return out


def build_backup(
    config_text: str,
    inventory: list[dict[str, Any]],
    *,
    config_name: str,
    secrets: list[Secret],
    passphrase: str | None,
    scrypt_n: int = SCRYPT_N,
) -> dict[str, Any]:
    """The backup document; secrets are encrypted when ``passphrase`` is given, else left out."""
    from meterbridge import __version__

    redacted_text = redact(config_text, secrets)
    body: dict[str, Any] = {
        "format": BACKUP_FORMAT,
        "version": BACKUP_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "software": __version__,
        "config_name": config_name,
        "config": redacted_text,
        "redacted": [s.path for s in secrets if s.source == "inline"],
        "inventory": inventory,
        "secrets": None,
    }
    if passphrase is not None:
        body["secrets"] = encrypt_secrets(secrets, passphrase, _aad(redacted_text, inventory), n=scrypt_n)
    return body


def load_backup(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackupError(f"not a meterbridge backup (not JSON: {exc})") from None
    if not isinstance(body, dict) or body.get("format") != BACKUP_FORMAT:
        raise BackupError("not a meterbridge backup (no 'format': 'meterbridge-backup')")
    if body.get("version") != BACKUP_VERSION:
        raise BackupError(f"backup version {body.get('version')!r} is not {BACKUP_VERSION}")
    if not isinstance(body.get("config"), str) or not isinstance(body.get("inventory"), list):
        raise BackupError("backup: 'config' or 'inventory' is missing")
    return body


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore produces: the configuration text, file secrets to write, variables to set."""

    config_text: str
    files: dict[str, str]  # path -> secret (repr never shows them)
    env: dict[str, str]
    keys_restored: bool

    def __repr__(self) -> str:
        return f"Restored(files={sorted(self.files)}, env={sorted(self.env)}, keys={self.keys_restored})"


def restore_text(body: dict[str, Any], passphrase: str | None) -> Restored:
    """The configuration text of a backup, with its secrets back in place when ``passphrase`` is given."""
    text = body["config"]
    box = body.get("secrets")
    if box is None or passphrase is None:
        return Restored(text, {}, {}, False)
    entries = decrypt_secrets(box, passphrase, _aad(text, body["inventory"]))
    inline = {
        e["path"]: e.get("raw") or json.dumps(e["value"]) for e in entries if e.get("source") == "inline"
    }
    files = {e["ref"]: e["value"] for e in entries if e.get("source") == "file"}
    env = {e["ref"]: e["value"] for e in entries if e.get("source") == "env"}
    return Restored(reinsert(text, inline) if inline else text, files, env, True)


# ---------------------------------------------------------------------------------------------- commands


def _passphrase(env_name: str | None, *, confirm: bool) -> str:
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise BackupError(f"environment variable {env_name} (the passphrase) is not set")
        return value
    return str(typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm))


def _read_inventory(url: str) -> list[dict[str, Any]]:
    """The meters of the store at ``url``; none (and no new database file) when a SQLite file is missing."""
    from meterbridge.sinks.store import open_store

    if not url.startswith(("postgresql://", "postgres://")):
        path = url[len("sqlite://") :] if url.startswith("sqlite://") else url
        path = path[1:] if url.startswith("sqlite://") and path.startswith("/") else path
        if path not in ("", ":memory:") and not Path(path).exists():
            typer.echo(f"note: no store at {path}; the backup has no meter inventory", err=True)
            return []
    with open_store(url) as the_store:
        return [_meter_dict(m) for m in the_store.meters()]


def _store_url(config_text: str, override: str | None) -> str:
    if override:
        return override
    import yaml

    data = yaml.safe_load(config_text) or {}
    store = data.get("store") if isinstance(data, dict) else None
    url = store.get("url") if isinstance(store, dict) else None
    return str(url) if url else "var/meterbridge.sqlite"


@app.command()
def backup(
    config: Annotated[Path, typer.Option("--config", "-c", help="The gateway configuration (YAML).")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Backup file to write (default: meterbridge-backup-<time>.json)."
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store to read the meter inventory from (default: store.url)."),
    ] = None,
    include_keys: Annotated[
        bool,
        typer.Option(
            "--include-keys",
            help="Also save the secrets (inline, and the values of {env:} and {file:} references), "
            "encrypted with a passphrase (scrypt + AES-256-GCM).",
        ),
    ] = False,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env", help="Read the passphrase from this environment variable (else ask)."
        ),
    ] = None,
) -> None:
    """Save the configuration and the meter inventory to one JSON file; secrets only with --include-keys."""

    try:
        text = config.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot read {config}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    try:
        secrets = find_secrets(text)
        passphrase = None
        if include_keys:
            secrets = read_secret_values(secrets)
            passphrase = _passphrase(passphrase_env, confirm=True)
        inventory = _read_inventory(_store_url(text, store))
        body = build_backup(text, inventory, config_name=config.name, secrets=secrets, passphrase=passphrase)
    except MeterbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    target = output or Path(f"meterbridge-backup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json")
    data = json.dumps(body, indent=1, ensure_ascii=False).encode() + b"\n"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    kept = (
        f"{len(secrets)} secrets encrypted"
        if include_keys
        else f"{len(body['redacted'])} inline secrets left out"
    )
    typer.echo(f"{target}: configuration, {len(inventory)} meters, {kept}")


@app.command()
def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `meterbridge backup`.")],
    config: Annotated[Path, typer.Option("--config", "-c", help="Where to write the configuration.")],
    store: Annotated[
        str | None, typer.Option("--store", help="Store to put the inventory in (default: store.url).")
    ] = None,
    passphrase_env: Annotated[
        str | None,
        typer.Option(
            "--passphrase-env", help="Read the passphrase from this environment variable (else ask)."
        ),
    ] = None,
    without_keys: Annotated[
        bool, typer.Option("--without-keys", help="Do not ask for the passphrase; restore without secrets.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing configuration file.")] = False,
) -> None:
    """Write the configuration back (secrets too when the backup has them and the passphrase is right) and
    put the meter inventory into the store."""
    from meterbridge.sinks.store import MeterInfo, open_store

    try:
        body = load_backup(file.read_bytes())
        passphrase = None
        if body.get("secrets") is not None and not without_keys:
            passphrase = _passphrase(passphrase_env, confirm=False)
        restored = restore_text(body, passphrase)
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    except MeterbridgeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if config.exists() and not force:
        typer.echo(f"error: {config} exists (use --force to overwrite)", err=True)
        raise typer.Exit(1)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(restored.config_text)
    for path, value in restored.files.items():
        target = Path(path).expanduser()  # relative paths: the working directory, as the gateway reads them
        if target.exists() and not force:
            typer.echo(f"kept existing secret file {target}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value + "\n")
        typer.echo(f"wrote secret file {target}")
    for name in sorted(restored.env):
        if os.environ.get(name, "").strip() != restored.env[name]:
            typer.echo(f"set the environment variable {name} (its value is in the backup's secrets)")
    meters = []
    for entry in body["inventory"]:
        seen = entry.get("last_seen")
        meters.append(
            MeterInfo(
                **{k: entry.get(k) for k in ("id", "name", "kind", "protocol", "address", "serial")},
                manufacturer=entry.get("manufacturer"),
                firmware=entry.get("firmware"),
                last_seen=datetime.fromisoformat(seen) if seen else None,
            )
        )
    try:
        with open_store(_store_url(restored.config_text, store)) as the_store:
            for meter in meters:
                the_store.upsert_meter(meter)
    except (MeterbridgeError, TypeError, ValueError) as exc:
        typer.echo(f"error: inventory not restored: {exc}", err=True)
        raise typer.Exit(1) from None
    missing = len(body.get("redacted", [])) if not restored.keys_restored else 0
    note = f"; {missing} secrets left empty (null)" if missing else ""
    typer.echo(f"{config}: configuration written, {len(meters)} meters in the store{note}")
    _check(restored.config_text, config)


def _check(text: str, where: Path) -> None:
    from meterbridge.errors import ConfigError
    from meterbridge.gateway.config import parse_config

    try:
        parse_config(text, str(where))
    except ConfigError as exc:
        typer.echo(f"note: the restored configuration does not validate here yet: {exc}", err=True)
