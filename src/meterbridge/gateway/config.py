"""The gateway's configuration: one YAML file, validated with pydantic, errors pointing at file lines.

``load_config(path)`` (or ``parse_config(text, source)``) returns a ``GatewayConfig`` or raises
``ConfigError`` whose ``where`` is ``FILE:LINE key.path`` and whose message says what was expected. All
problems of a file are reported at once (one per line of the message). Unknown keys are errors (a typo
must not be silently ignored), and the daemon refuses to start rather than guess.

Secrets (DLMS keys, passwords, tokens) are written inline, or as ``{env: NAME}`` (an environment variable)
or ``{file: PATH}`` (the file's content, stripped); they become ``pydantic.SecretStr`` and are never
echoed back, neither in errors nor in ``repr`` or dumps.

``EXAMPLE`` is a commented configuration using every option (``meterbridge config example`` prints it);
a test checks that it validates and names every field of the model.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import yaml

if TYPE_CHECKING:
    from meterbridge.transports.line import LineSettings
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from meterbridge.errors import ConfigError
from meterbridge.obis import ObisCode
from meterbridge.sinks.store import redact_url

__all__ = [
    "EXAMPLE",
    "BusConfig",
    "BusMeterConfig",
    "GatewayConfig",
    "MeterConfig",
    "MqttConfig",
    "QualityConfig",
    "RegisterOverride",
    "ScanConfig",
    "StoreConfig",
    "TlsConfig",
    "WebConfig",
    "iter_model_fields",
    "load_config",
    "local_timezone_name",
    "parse_config",
]

_SECRET_WORDS: Final = ("key", "password", "token", "secret")
_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


# ---------------------------------------------------------------- secrets


def _resolve_secret(value: Any) -> Any:
    """``"..."`` | ``{env: NAME}`` | ``{file: PATH}`` -> the secret's text (wrapped by pydantic in SecretStr)."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            name = str(value["env"])
            if name not in os.environ:
                raise ValueError(f"environment variable {name} is not set")
            return os.environ[name].strip()
        if set(value) == {"file"}:
            path = Path(str(value["file"])).expanduser()
            try:
                return path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"cannot read secret file {str(path)!r}: {exc.strerror}") from None
        raise ValueError("expected a string, {env: NAME} or {file: PATH}")
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a string, {env: NAME} or {file: PATH}")
    return value


Secret = Annotated[SecretStr, BeforeValidator(_resolve_secret)]


def _check_hex_key(value: SecretStr | None, what: str) -> SecretStr | None:
    if value is None:
        return None
    text = value.get_secret_value().replace(" ", "")
    if not re.fullmatch(r"[0-9A-Fa-f]{32}", text):
        raise ValueError(f"{what} must be 32 hex digits (16 bytes, AES-128); the value given is not")
    return SecretStr(text.upper())


# ---------------------------------------------------------------- building blocks


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=False)


class Range(_Model):
    """A closed range; either bound may be left out."""

    min: Decimal | None = None
    max: Decimal | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class RegisterOverride(_Model):
    """Per-register corrections: the value the meter sends is multiplied by 10**scaler; unit and name
    replace what the driver reported; ``plausible`` narrows or widens the catalogue's range."""

    scaler: int | None = Field(default=None, ge=-12, le=12)
    unit: str | None = None
    name: str | None = None
    plausible: Range | None = None


def _register_key(text: str) -> str:
    """OBIS keys in any notation -> canonical text; M-Bus string keys stay as they are."""
    if text.startswith("mbus/"):
        return text
    try:
        return str(ObisCode.parse(text))
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither an OBIS code nor an M-Bus key (mbus/...): {exc}") from None


Registers = dict[str, RegisterOverride]


def _normalise_registers(value: Any) -> Any:
    if isinstance(value, dict):
        return {_register_key(str(k)): v for k, v in value.items()}
    return value


class DlmsKeys(_Model):
    """Keys of a DLMS meter. ``encryption`` is the GUEK, ``authentication`` the GAK (optional: without it
    pushes are decrypted but marked unauthenticated), ``password`` the LLS password."""

    encryption: Secret | None = None
    authentication: Secret | None = None
    password: Secret | None = None

    @field_validator("encryption", "authentication")
    @classmethod
    def _hex(cls, value: SecretStr | None) -> SecretStr | None:
        return _check_hex_key(value, "a DLMS key")


def _transport(value: str) -> str:
    """Checked with ``meterbridge.transports.url.parse_transport_url`` (the URL every driver opens)."""
    from meterbridge.transports.url import parse_transport_url

    text = value.strip()
    try:
        parse_transport_url(text)
    except ConfigError as exc:
        raise ValueError(exc.message) from None
    return text


def _authentication(value: Any) -> Any:
    """``hls`` is short for ``hls-gmac`` (the only HLS mechanism the DLMS client speaks)."""
    return "hls-gmac" if value == "hls" else value


Transport = Annotated[str, BeforeValidator(lambda v: _transport(v) if isinstance(v, str) else v)]
MeterId = Annotated[str, Field(pattern=_ID.pattern)]


class MeterConfig(_Model):
    """A meter read on its own transport: the optical port, a DLMS client, or a push listener."""

    id: MeterId
    name: str | None = None
    protocol: Literal["optical", "dlms", "push"]
    transport: Transport
    interval: float = Field(default=60.0, gt=0, description="seconds between reads (optical, dlms)")
    timeout: float = Field(default=30.0, gt=0, description="seconds one read may take")
    baud: int | None = Field(default=None, gt=0)
    # optical (IEC 62056-21)
    mode: Literal["readout", "dlms"] = "readout"
    device_address: str = ""
    # DLMS
    wrapper: bool = False
    client_address: int | None = Field(
        default=None, ge=0, description="default: 16 without authentication, 32 with lls, 1 with hls-gmac"
    )
    server_address: int = Field(default=1, ge=0)
    physical_address: int | None = Field(default=None, ge=0)
    authentication: Annotated[Literal["none", "lls", "hls-gmac"], BeforeValidator(_authentication)] = "none"
    objects: list[str] = Field(default_factory=list)
    timezone: str = Field(default="UTC", description="IANA zone of meter times sent without UTC offset")
    # push
    push_layout: list[str] = Field(default_factory=list)
    keys: DlmsKeys = Field(default_factory=DlmsKeys)
    registers: Annotated[Registers, BeforeValidator(_normalise_registers)] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        return _check_zone(name)

    @field_validator("objects", "push_layout")
    @classmethod
    def _obis_list(cls, values: list[str]) -> list[str]:
        return [_register_key(v) for v in values]

    @model_validator(mode="after")
    def _consistent(self) -> MeterConfig:
        if self.push_layout and self.protocol != "push":
            raise ValueError("push_layout only applies to protocol: push")
        if self.authentication == "lls" and self.keys.password is None:
            raise ValueError("authentication: lls needs keys.password")
        if self.authentication == "hls-gmac" and (
            self.keys.encryption is None or self.keys.authentication is None
        ):
            raise ValueError("authentication: hls-gmac needs keys.encryption and keys.authentication")
        return self


class ScanConfig(_Model):
    """How a bus is searched for meters."""

    mode: Literal["primary", "secondary", "none"] = "secondary"
    addresses: str = Field(default="0-250", description="primary addresses, e.g. '0-250' or '1,5,7-9'")
    every: float = Field(default=86_400.0, gt=0, description="seconds between scans")

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, text: str) -> str:
        parse_addresses(text)
        return text

    def address_list(self) -> list[int]:
        return parse_addresses(self.addresses)


def parse_addresses(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]`` (M-Bus primary addresses 0-250)."""
    found: set[int] = set()
    for part in text.replace(" ", "").split(","):
        m = re.fullmatch(r"(\d{1,3})(?:-(\d{1,3}))?", part)
        if m is None:
            raise ValueError(f"{part!r} is not an address or a range like 1-250")
        low, high = int(m[1]), int(m[2] or m[1])
        if not 0 <= low <= high <= 250:
            raise ValueError(f"{part!r}: primary addresses are 0-250, low before high")
        found.update(range(low, high + 1))
    return sorted(found)


class BusMeterConfig(_Model):
    """Optional settings for one meter of a bus (by primary or secondary address); any meter a scan finds
    and has no entry here is read with the defaults."""

    address: int | None = Field(default=None, ge=0, le=250)
    secondary: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{8}([0-9A-Fa-f]{8})?$")
    id: MeterId | None = None
    name: str | None = None
    registers: Annotated[Registers, BeforeValidator(_normalise_registers)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_address(self) -> BusMeterConfig:
        if (self.address is None) == (self.secondary is None):
            raise ValueError("give exactly one of address (primary) or secondary")
        return self


class BusConfig(_Model):
    """A wired M-Bus: scanned on a schedule, every meter found read every ``interval`` seconds."""

    id: MeterId
    transport: Transport
    baud: int = Field(default=2400, gt=0)
    interval: float = Field(default=900.0, gt=0)
    extra_timeout: float | None = Field(
        default=None,
        ge=0,
        le=10,
        description="seconds added to the reply window of EN 13757-2 (330 bit times + 50 ms); "
        "default 0.1 through a TCP gateway, else 0",
    )
    retries: int = Field(default=2, ge=0, le=10, description="repeats of a request that got no valid answer")
    scan: ScanConfig = Field(default_factory=ScanConfig)
    collisions_max: int = Field(default=3, ge=0, description="collisions per scan before a quality event")
    meters: list[BusMeterConfig] = Field(default_factory=list)

    @property
    def line(self) -> LineSettings:
        """The bus's line settings: ``baud``, 8E1 (EN 13757-2)."""
        from meterbridge.transports.line import LineSettings, Parity

        return LineSettings(self.baud, 8, Parity.EVEN, 1)

    @property
    def extra_reply_s(self) -> float:
        """``extra_timeout``, or its default: 0.1 s through a TCP gateway (its own latency), else 0."""
        if self.extra_timeout is not None:
            return self.extra_timeout
        return 0.1 if self.transport.startswith("tcp://") else 0.0


class QualityConfig(_Model):
    """The guide's quality thresholds (EN 50160)."""

    voltage: Range = Range(min=Decimal(207), max=Decimal(253))
    frequency: Range = Range(min=Decimal(49), max=Decimal(51))
    power_factor_min: Decimal = Decimal("0.9")
    thd_max: Decimal = Decimal(8)
    silent_after: int = Field(default=3, ge=1, description="failed polls before a meter counts as silent")
    plausible: Annotated[dict[str, Range], BeforeValidator(_normalise_registers)] = Field(
        default_factory=dict
    )


class StoreConfig(_Model):
    url: str = "var/meterbridge.sqlite"
    retention_days: int = Field(default=0, ge=0, description="0 keeps readings forever")
    synchronous: Literal["normal", "full"] = "normal"

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        text = url.strip()
        if not text:
            raise ValueError("expected a file path, sqlite:///path or postgresql://...")
        if "://" in text and not text.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(f"scheme {text.split('://')[0]!r}: expected a path, sqlite:/// or postgresql://")
        return text


class TlsConfig(_Model):
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False


class MqttConfig(_Model):
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str | None = None
    username: str | None = None
    password: Secret | None = None
    tls: TlsConfig | None = None
    qos: Literal[0, 1, 2] = 1
    base_topic: str = "meterbridge"
    legacy_topics: bool = False
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # keep readings in the outbox until a subscriber takes them (MQTT 5 "no matching subscribers"):
    # on for fleet gateways whose ingest uses a shared subscription, off for Home Assistant only
    require_subscriber: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.fullmatch(r"mqtts?://[^/\s]+(:\d+)?/?", url.strip()):
            raise ValueError(f"{url!r}: expected mqtt://host:port or mqtts://host:port")
        return url.strip()


class SinksConfig(_Model):
    mqtt: MqttConfig | None = None


def _check_zone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Zurich, UTC)") from None
    return name


def local_timezone_name() -> str:
    """The system's IANA zone: ``TZ`` when it names one, else the target of ``/etc/localtime``, else
    ``/etc/timezone``; ``UTC`` when none of them gives a known zone."""
    candidates: list[str] = []
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        candidates.append(tz)
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        pass
    else:
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(Path("/etc/timezone").read_text(encoding="utf-8").strip())
    for name in candidates:
        try:
            return _check_zone(name)
        except ValueError:
            continue
    return "UTC"


class WebConfig(_Model):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8450, ge=1, le=65535)
    token: Secret | None = None
    timezone: str | None = Field(
        default=None, description="IANA zone of day/month energy boundaries; default: the system's zone"
    )
    reports_dir: str | None = Field(
        default="var/reports", description="`meterbridge check` reports listed by the dashboard; null: none"
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str | None) -> str | None:
        return None if name is None else _check_zone(name)

    def zone(self) -> str:
        """The configured zone, or the system's (``local_timezone_name``)."""
        return self.timezone or local_timezone_name()


class GatewayConfig(_Model):
    """The whole file."""

    name: str = Field(default="meterbridge", pattern=_ID.pattern)
    meters: list[MeterConfig] = Field(default_factory=list)
    buses: list[BusConfig] = Field(default_factory=list)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    web: WebConfig = Field(default_factory=WebConfig)

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        seen: dict[str, str] = {}
        names = [(f"meters[{i}]", m.id) for i, m in enumerate(self.meters)]
        names += [(f"buses[{i}]", b.id) for i, b in enumerate(self.buses)]
        for where, ident in names:
            if ident in seen:
                raise ValueError(f"id {ident!r} of {where} is already used by {seen[ident]}")
            seen[ident] = where
        transports: dict[str, str] = {}
        for i, b in enumerate(self.buses):
            if b.transport in transports:
                raise ValueError(
                    f"buses[{i}] uses transport {b.transport} already used by {transports[b.transport]}"
                )
            transports[b.transport] = f"buses[{i}]"
        return self


# ---------------------------------------------------------------- loading with line numbers


def _node_at(node: yaml.Node | None, path: tuple[int | str, ...]) -> yaml.Node | None:
    """The deepest YAML node along ``path`` (pydantic's error location)."""
    for step in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(step):
                    node = value_node
                    break
            else:
                return node
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if 0 <= step < len(node.value):
                node = node.value[step]
            else:
                return node
        else:
            return node
    return node


def _path_text(path: tuple[int | str, ...]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text or "(top level)"


def _is_secret_path(path: tuple[int | str, ...]) -> bool:
    return any(isinstance(s, str) and any(w in s.lower() for w in _SECRET_WORDS) for s in path)


def _describe(error: Any, path: tuple[int | str, ...]) -> str:
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if error["type"] == "extra_forbidden":
        return "unknown key (check the spelling; `meterbridge config example` lists every option)"
    if error["type"] == "missing":
        return "required key is missing"
    if not _is_secret_path(path) and error["type"] not in {"model_type", "dict_type"}:
        given = error.get("input")
        if isinstance(given, str):
            shown = redact_url(given)  # a URL may carry a password: mqtt://user:secret@host
            message = message.replace(given, shown)
            if repr(shown) not in message:
                message += f" (got {shown!r})"
        elif (isinstance(given, int | float | bool) or given is None) and repr(given) not in message:
            message += f" (got {given!r})"
    return message


def parse_config(text: str, source: str = "<config>") -> GatewayConfig:
    """Validate YAML text; raise ``ConfigError`` naming the file line and key path of every problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"not valid YAML: {what}", where=f"{source}{at}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of keys (meters:, buses:, sinks: ...)", where=f"{source}:1")
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems: list[str] = []
        first_where: str | None = None
        for detail in exc.errors():
            # pydantic adds validator names (function-after[...]) to loc; only real keys name nodes
            path = tuple(
                p for p in detail["loc"] if not (isinstance(p, str) and p.startswith(("function-", "json-")))
            )
            node = _node_at(root, path)
            line = node.start_mark.line + 1 if node is not None else 1
            where = f"{source}:{line} {_path_text(path)}"
            first_where = first_where or where
            problems.append(f"{where}: {_describe(detail, path)}")
        problem = ConfigError("\n".join(problems))
        problem.where = first_where
        raise problem from None


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a configuration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration: {exc.strerror}", where=str(file)) from None
    return parse_config(text, str(file))


def iter_model_fields(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field path of a model, nested models included (``sinks.mqtt.tls.ca_file``, ``meters[].id``)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        for inner in _models_in(info.annotation):
            suffix = "[]" if _is_list(info.annotation) else ""
            yield from iter_model_fields(inner, f"{path}{suffix}.")


def _is_list(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is list


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if getattr(annotation, "__origin__", None) is dict:
        return []  # dict values (register overrides) are listed by their own model
    for arg in getattr(annotation, "__args__", ()):
        found.extend(_models_in(arg))
    return found


EXAMPLE: Final = """\
# meterbridge gateway configuration (every option, with its default where it has one).
# Check a file with `meterbridge config check FILE`; run with `meterbridge run --config FILE`.

name: meterbridge              # this gateway's id (MQTT device id, availability topic)

# Meters read on their own port.
meters:
  - id: e450-optical           # letters, digits, _ . : - (used in topics and the store)
    name: House meter          # shown in Home Assistant and the dashboard
    protocol: optical          # optical (IEC 62056-21) | dlms (DLMS client) | push (listen to pushes)
    transport: serial:///dev/serial/by-id/usb-optical-probe   # serial://PATH, tcp://host:port, udp://..., pty://...
    baud: 300                  # starting baud rate (optical: 300; push: 2400)
    interval: 60               # seconds between reads
    timeout: 30                # seconds one read may take
    mode: readout              # optical: readout (mode C data readout) | dlms (mode E hand-over to HDLC)
    device_address: ""         # optical: the address in the sign-on /?<address>!
    registers:                 # per register corrections, by OBIS code (any notation) or M-Bus key
      "1-0:31.7.0.255":
        scaler: -2             # multiply the value sent by 10**scaler (pushes without scaler: 9 -> 0.09 A)
        unit: A
        name: Current L1
        plausible: {min: 0, max: 63}

  - id: e450-dlms
    protocol: dlms
    transport: tcp://192.0.2.10:4059
    wrapper: true              # IEC 62056-47 wrapper (TCP/UDP 4059) instead of HDLC
    authentication: hls-gmac   # none | lls (keys.password) | hls-gmac or hls (keys.encryption + keys.authentication)
    client_address: 1          # default by authentication: 16 public (none), 32 reading (lls), 1 management (hls)
    server_address: 1          # logical device
    physical_address: 17       # HDLC lower address (serial HDLC only)
    objects: ["1-0:1.8.0.255", "1-0:2.8.0.255", "1-0:32.7.0.255"]   # empty: the meter's default list
    keys:
      encryption: {env: METERBRIDGE_E450_GUEK}      # inline hex, {env: NAME} or {file: PATH}; never printed
      authentication: {file: /etc/meterbridge/e450.gak}
      password: {env: METERBRIDGE_E450_PASSWORD}     # LLS password

  - id: e450-cii
    protocol: push             # the E450 customer interface (encrypted HDLC/GBT pushes at 2400 8E1)
    transport: serial:///dev/ttyAMA0
    timezone: Europe/Zurich    # the meter clock's zone, for times sent without UTC offset (default UTC)
    push_layout: ["0-0:1.0.0.255", "1-0:1.8.0.255", "1-0:2.8.0.255"]  # for pushes that carry no OBIS list
    keys:
      encryption: 000102030405060708090A0B0C0D0E0F

# Wired M-Bus: a bus is scanned on a schedule; every meter found is read with the defaults.
buses:
  - id: cellar
    transport: serial:///dev/serial/by-id/usb-mbus-master
    baud: 2400
    interval: 900              # seconds between reads of every meter on the bus
    extra_timeout: 0           # seconds added to the standard reply window (default: 0.1 via tcp://, else 0)
    retries: 2
    collisions_max: 3          # collisions in a scan before a bus_collisions quality event
    scan:
      mode: secondary          # primary | secondary | none (only the meters listed below)
      addresses: "0-250"       # primary scan range
      every: 86400             # seconds between scans
    meters:                    # optional: only meters that need a name or corrections
      - address: 5             # primary address ...
        id: heat-flat-1
        name: Heat flat 1
        registers:
          "mbus/0/energy/instantaneous/s0/t0/u0": {unit: kWh}
      - secondary: "12345678"  # ... or secondary (8 or 16 hex digits)

# Quality thresholds (the E450 guide / EN 50160). Breaches raise quality events.
quality:
  voltage: {min: 207, max: 253}
  frequency: {min: 49, max: 51}
  power_factor_min: 0.9
  thd_max: 8
  silent_after: 3              # failed polls before "meter stopped answering"
  plausible:                   # widen or narrow the catalogue's plausible ranges, by OBIS code
    "1-0:1.7.0.255": {min: 0, max: 50000}

store:
  url: var/meterbridge.sqlite  # a path / sqlite:///path (WAL) or postgresql://user@host/db?schema=meterbridge
  retention_days: 0            # 0 keeps readings forever
  synchronous: normal          # normal survives a crash; full also a power cut (slower)

sinks:
  mqtt:                        # leave out to run without MQTT
    url: mqtt://127.0.0.1:1883 # mqtts:// for TLS
    client_id: meterbridge-house
    username: meterbridge
    password: {env: METERBRIDGE_MQTT_PASSWORD}
    tls:
      ca_file: /etc/ssl/certs/ca-certificates.crt
      cert_file: null
      key_file: null
      insecure: false          # true skips the host name check (testing only)
    qos: 1
    base_topic: meterbridge
    legacy_topics: false       # also publish the flat topics of older bridges
    discovery: true            # Home Assistant MQTT discovery
    discovery_prefix: homeassistant
    require_subscriber: false  # true on fleet gateways: keep readings until the ingest's shared subscription takes them

web:
  enabled: true
  host: 127.0.0.1
  port: 8450
  token: {env: METERBRIDGE_WEB_TOKEN}   # when set, the API wants "Authorization: Bearer <token>"
  timezone: Europe/Zurich      # day/month energy boundaries and page times; default: the system's zone (TZ,
                               # /etc/localtime), UTC when it has none
  reports_dir: var/reports     # where `meterbridge check` writes reports (the Reports page); null: no page
"""
