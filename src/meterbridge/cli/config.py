"""``meterbridge config check FILE``, ``meterbridge config example`` and ``meterbridge config new``."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["config_app"]

config_app = typer.Typer(
    name="config",
    help="Check a gateway configuration, print a commented example of every option, or write a small one.",
    no_args_is_help=True,
)
app.add_typer(config_app, name="config")


@config_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The YAML configuration to validate.")],
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing when the file is valid.")
    ] = False,
) -> None:
    """Validate FILE; print every problem with its line and key path (exit 1), or a summary (exit 0)."""
    from meterbridge.errors import ConfigError
    from meterbridge.gateway.config import load_config
    from meterbridge.sinks.store import redact_url

    try:
        config = load_config(file)
    except ConfigError as exc:
        typer.echo(str(exc) if exc.where and str(exc).startswith(exc.where) else f"{exc}", err=True)
        raise typer.Exit(1) from None
    if not quiet:
        mqtt = redact_url(config.sinks.mqtt.url) if config.sinks.mqtt else "off"
        web = f"http://{config.web.host}:{config.web.port}/" if config.web.enabled else "off"
        typer.echo(
            f"{file}: valid - {len(config.meters)} meters, {len(config.buses)} buses, "
            f"store {redact_url(config.store.url)}, mqtt {mqtt}, web {web}"
        )


@config_app.command("example")
def example() -> None:
    """Print a commented configuration that uses every option."""
    from meterbridge.gateway.config import EXAMPLE

    typer.echo(EXAMPLE, nl=False)


def _transport_url(text: str) -> str:
    """A device path as given on the command line, or any transport URL (tcp://, serial://...)."""
    return text if "://" in text else f"serial://{text}"


def new_config(
    *,
    name: str = "home",
    optical: str | None = None,
    push: str | None = None,
    mbus: str | None = None,
    mqtt: str | None = None,
    key_env: str | None = None,
    auth_key_env: str | None = None,
    timezone: str = "UTC",
    store: str = "var/meterbridge.sqlite",
    stand_in_keys: bool = False,
) -> str:
    """A small commented configuration for the meters given (at least one), MQTT when a broker is given.
    Keys are read from environment variables (``key_env``, ``auth_key_env``), never written in the file;
    ``stand_in_keys`` writes zeros in their place instead (to check the rest before the variables are set)."""

    def key(variable: str | None) -> str:
        return f'"{"0" * 32}"' if stand_in_keys else f"{{env: {variable}}}"

    if not (optical or push or mbus):
        raise ValueError("give at least one meter: --optical, --push or --mbus")
    if push and not key_env:
        raise ValueError(
            "--push needs --key-env: the variable that will hold the meter's encryption key (GUEK)"
        )
    out = [
        "# meterbridge configuration written by `meterbridge config new`; every option: `meterbridge config example`",
        f"name: {name}                  # the gateway's id: MQTT topics and the Home Assistant device",
        "",
    ]
    if optical or push:
        out.append("meters:")
    if optical:
        out += [
            "  - id: e450-optical",
            "    name: Electricity meter (optical port)",
            "    protocol: optical          # IEC 62056-21 mode C readout",
            f"    transport: {_transport_url(optical)}",
            "    interval: 60               # seconds between readouts",
        ]
    if push:
        out += [
            "  - id: e450-cii",
            "    name: Electricity meter (customer interface)",
            "    protocol: push             # the encrypted DLMS pushes of the E450's CII (2400 8E1)",
            f"    transport: {_transport_url(push)}",
            f"    timezone: {timezone}   # the meter clock's zone, for times sent without UTC offset",
            "    keys:",
            f"      encryption: {key(key_env)}   # GUEK, 32 hex digits, from your utility",
        ]
        if auth_key_env:
            out.append(
                f"      authentication: {key(auth_key_env)}   # GAK: pushes checked, not only decrypted"
            )
        out += [
            "    registers:                 # the push carries no scaler for currents: they come in 1/100 A",
            *(f'      "1-0:{c}.7.0.255": {{scaler: -2, unit: A}}' for c in (31, 51, 71)),
        ]
    if mbus:
        out += [
            "",
            "buses:",
            "  - id: mbus",
            f"    transport: {_transport_url(mbus)}",
            "    interval: 900              # seconds between reads of every meter found",
            "    scan:",
            "      mode: secondary          # find every meter by its secondary address",
            "      every: 86400             # scan again once a day",
        ]
    out += ["", "store:", f"  url: {store}", ""]
    if mqtt:
        out += [
            "sinks:",
            "  mqtt:",
            f"    url: {mqtt}",
            "    # username: meterbridge",
            "    # password: {env: METERBRIDGE_MQTT_PASSWORD}",
            "    discovery: true            # Home Assistant finds every meter (device per meter)",
            "",
        ]
    out += [
        "web:",
        "  host: 127.0.0.1             # the dashboard on http://127.0.0.1:8450/",
        "  port: 8450",
        "",
    ]
    return "\n".join(out)


@config_app.command("new")
def new(
    optical: Annotated[
        str | None, typer.Option("--optical", help="Device (or URL) of an optical head on the meter.")
    ] = None,
    push: Annotated[
        str | None, typer.Option("--push", help="Device (or URL) of an M-Bus adapter on the E450's CII.")
    ] = None,
    mbus: Annotated[str | None, typer.Option("--mbus", help="Device (or URL) of an M-Bus master.")] = None,
    mqtt: Annotated[
        str | None,
        typer.Option("--mqtt", help="Broker URL for Home Assistant, e.g. mqtt://homeassistant.local."),
    ] = None,
    key_env: Annotated[
        str | None, typer.Option("--key-env", help="Environment variable that holds the GUEK (with --push).")
    ] = None,
    auth_key_env: Annotated[
        str | None, typer.Option("--auth-key-env", help="Environment variable that holds the GAK.")
    ] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="The meter clock's IANA zone.")] = "UTC",
    name: Annotated[str, typer.Option("--name", help="The gateway's id (topics, devices).")] = "home",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (refuses to overwrite) instead of stdout."),
    ] = None,
) -> None:
    """Write a small configuration for the meters you have, checked before it is written.

    Example: meterbridge config new --push /dev/ttyUSB0 --key-env E450_GUEK --mqtt mqtt://homeassistant.local -o meterbridge.yaml
    """
    from meterbridge.errors import ConfigError
    from meterbridge.gateway.config import parse_config

    make = functools.partial(
        new_config,
        name=name,
        optical=optical,
        push=push,
        mbus=mbus,
        mqtt=mqtt,
        key_env=key_env,
        auth_key_env=auth_key_env,
        timezone=timezone,
    )
    try:
        text = make()
        # the keys themselves are checked when the gateway starts (the variables may not be set yet)
        parse_config(make(stand_in_keys=True), "the new configuration")
    except (ValueError, ConfigError) as exc:
        typer.echo(f"meterbridge config new: {exc}", err=True)
        raise typer.Exit(2) from None
    if output is None:
        typer.echo(text, nl=False)
        return
    if output.exists():
        typer.echo(f"meterbridge config new: {output} exists; not overwritten", err=True)
        raise typer.Exit(1)
    output.write_text(text, encoding="utf-8")
    typer.echo(
        f"wrote {output}; next: meterbridge config check {output} && meterbridge run --config {output}"
    )
    for variable in (v for v in (key_env, auth_key_env) if v and v not in os.environ):
        typer.echo(f"set {variable} (32 hex digits) in the gateway's environment before it starts", err=True)
