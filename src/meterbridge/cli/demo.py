"""``meterbridge demo``: the whole system on this machine, no hardware.

It starts three simulators as child processes (``meterbridge simulate ...``): a Landis+Gyr E450 answering
on its optical port, the same kind of meter pushing encrypted customer-interface frames, and a wired M-Bus
of ten meters, each behind a TCP port on 127.0.0.1. It writes a gateway configuration for them to
``./var/demo.yaml`` and runs the gateway with SQLite in ``./var/demo.sqlite``, MQTT when a broker answers
on localhost:1883 (it says so when none does), and the web dashboard on 127.0.0.1:8450. Ctrl-C stops it
all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["DEMO_GAK", "DEMO_KEY", "demo", "demo_config"]

DEMO_KEY = "000102030405060708090A0B0C0D0E0F"  # the demo's own GUEK (not a real meter's)
DEMO_GAK = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"  # and its GAK: the gateway verifies every push's tag


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _mqtt_answers(host: str, port: int) -> bool:
    """An MQTT 3.1.1 CONNECT gets a CONNACK with return code 0."""
    packet = b"\x10\x17\x00\x04MQTT\x04\x02\x00\x0a\x00\x0bmb-demo-prb"
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            sock.sendall(packet)
            reply = sock.recv(4)
            sock.sendall(b"\xe0\x00")
            return len(reply) == 4 and reply[0] == 0x20 and reply[3] == 0
    except OSError:
        return False


def demo_simulators(listen: dict[str, str], *, push_interval: float) -> dict[str, list[str]]:
    """``meterbridge simulate`` arguments of the demo's meters, by kind (``optical``, ``push``, ``mbus``),
    each listening on ``listen[kind]`` (``HOST:PORT``)."""
    return {
        "optical": ["e450", "--tcp", listen["optical"], "--seed", "1"],
        "push": [
            "e450",
            "--tcp",
            listen["push"],
            "--cii",
            "--key",
            DEMO_KEY,
            "--auth-key",
            DEMO_GAK,
            "--push-interval",
            f"{push_interval:g}",
            "--seed",
            "2",
        ],
        "mbus": ["mbus", "--tcp", listen["mbus"], "--meters", "10"],
    }


def demo_config(
    *,
    optical: int,
    push: int,
    mbus: int,
    store: str,
    mqtt: str | None,
    web_port: int,
    interval: float = 10.0,
    reports_dir: str = "var/reports",
) -> str:
    """The demo's gateway configuration (YAML) for simulators on these TCP ports."""
    mqtt_section = (
        f"sinks:\n  mqtt:\n    url: {mqtt}\n    base_topic: meterbridge\n    discovery_prefix: homeassistant\n"
        if mqtt
        else "sinks: {}\n"
    )
    return f"""\
# written by `meterbridge demo`: simulated meters on 127.0.0.1
name: demo
meters:
  - id: e450-optical
    name: E450 optical port
    protocol: optical
    transport: tcp://127.0.0.1:{optical}
    interval: {interval:g}
    timeout: 30
  - id: e450-cii
    name: E450 customer interface
    protocol: push
    transport: tcp://127.0.0.1:{push}
    timeout: 30
    timezone: Europe/Zurich
    keys:
      encryption: {DEMO_KEY}
      authentication: {DEMO_GAK}
    registers:                # the compact push sends currents in 1/100 A without a scaler
      "1-0:31.7.0.255": {{scaler: -2, unit: A}}
      "1-0:51.7.0.255": {{scaler: -2, unit: A}}
      "1-0:71.7.0.255": {{scaler: -2, unit: A}}
buses:
  - id: demo-bus
    transport: tcp://127.0.0.1:{mbus}
    baud: 2400
    interval: {interval:g}
    scan:
      mode: primary
      addresses: "0-12"
      every: 3600
store:
  url: {store}
{mqtt_section}web:
  enabled: true
  host: 127.0.0.1
  port: {web_port}
  timezone: Europe/Zurich     # the simulated E450's zone: energy days and months end at its midnight
  reports_dir: {reports_dir}
"""


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "meterbridge", "simulate", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {what} simulator exited with status {proc.returncode}")
        if _answers("127.0.0.1", port, 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the {what} simulator did not listen on port {port} within {timeout:g} s")


@app.command("demo")
def demo(
    var: Annotated[
        Path, typer.Option("--var", help="Directory for the configuration, SQLite and logs.")
    ] = Path("var"),
    web_port: Annotated[int, typer.Option("--web-port", help="Port of the dashboard on 127.0.0.1.")] = 8450,
    broker: Annotated[
        str, typer.Option("--broker", help="MQTT broker to publish to, when it answers.")
    ] = "mqtt://127.0.0.1:1883",
    seconds: Annotated[
        float, typer.Option("--seconds", help="Stop after this many seconds (0: run until Ctrl-C).")
    ] = 0.0,
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between reads of each meter.")
    ] = 10.0,
) -> None:
    """Simulated E450 (optical port + encrypted pushes) and an M-Bus of ten meters -> gateway -> SQLite,
    MQTT if a broker answers, web dashboard. Everything on 127.0.0.1; Ctrl-C stops it."""
    import logging

    from meterbridge.gateway.config import parse_config

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    var.mkdir(parents=True, exist_ok=True)
    log = var / "demo-simulators.log"
    ports = {"optical": _free_port(), "push": _free_port(), "mbus": _free_port()}
    host, _, port_text = broker.removeprefix("mqtt://").partition(":")
    mqtt_port = int(port_text or 1883)
    mqtt = broker if _mqtt_answers(host, mqtt_port) else None
    store = str(var / "demo.sqlite")
    text = demo_config(
        optical=ports["optical"],
        push=ports["push"],
        mbus=ports["mbus"],
        store=store,
        mqtt=mqtt,
        web_port=web_port,
        interval=interval,
        reports_dir=str(var / "reports"),
    )
    config_path = var / "demo.yaml"
    config_path.write_text(text)
    config = parse_config(text, str(config_path))

    procs: list[subprocess.Popen[bytes]] = []
    try:
        commands = demo_simulators(
            {what: f"127.0.0.1:{ports[what]}" for what in ("optical", "push", "mbus")}, push_interval=5
        )
        procs.extend(_spawn(args, log) for args in commands.values())
        labels = {"optical": "E450 optical", "push": "E450 CII push", "mbus": "M-Bus"}
        for kind, proc in zip(commands, procs, strict=True):
            _wait_port(ports[kind], proc, labels[kind])
    except RuntimeError as exc:
        _stop(procs)
        typer.echo(f"meterbridge demo: {exc} (see {log})", err=True)
        raise typer.Exit(1) from None

    typer.echo("meterbridge demo: simulators running")
    typer.echo(f"  E450 optical port (IEC 62056-21)  tcp://127.0.0.1:{ports['optical']}")
    typer.echo(
        f"  E450 customer interface (encrypted DLMS pushes, GUEK {DEMO_KEY})  tcp://127.0.0.1:{ports['push']}"
    )
    typer.echo(f"  M-Bus of 10 meters at 2400 baud  tcp://127.0.0.1:{ports['mbus']}")
    typer.echo(f"  configuration   {config_path}  (meterbridge run --config {config_path})")
    typer.echo(f"  SQLite store    {store}  (meterbridge status --store {store})")
    typer.echo(f"  dashboard       http://127.0.0.1:{web_port}/")
    if mqtt:
        typer.echo(
            f"  MQTT            {mqtt}: meterbridge/demo/readings/<meter>, Home Assistant discovery under homeassistant/"
        )
        typer.echo(f"                  (watch: mosquitto_sub -h {host} -p {mqtt_port} -t 'meterbridge/#' -v)")
    else:
        typer.echo(
            f"  MQTT            no broker answers at {broker}: readings are stored only (their outbox waits)"
        )
    typer.echo("Ctrl-C stops the demo.")

    from meterbridge.cli.run import serve_config

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if seconds > 0:
            loop.call_later(seconds, stop.set)
        await serve_config(config, stop)

    try:
        asyncio.run(main())
    finally:
        _stop(procs)
    typer.echo(f"meterbridge demo: stopped; the readings stay in {store}")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
