"""``meterbridge simulate e450``: a virtual Landis+Gyr E450 on a PTY or a TCP port.

Registers itself on the ``simulate`` sub-app of ``meterbridge.cli.simulate`` (owned by
the M-Bus simulator). Until that module exists the command is not registered.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Annotated

import typer

__all__ = ["simulate_e450"]


def simulate_e450(
    pty: Annotated[
        str | None,
        typer.Option("--pty", help="Create a PTY and a symlink at PATH that readers open as a serial port."),
    ] = None,
    tcp: Annotated[
        str | None, typer.Option("--tcp", help="Listen on HOST:PORT (e.g. 127.0.0.1:4059) instead of a PTY.")
    ] = None,
    cii: Annotated[
        bool, typer.Option("--cii", help="Be the customer interface: push every --push-interval s, 2400 8E1.")
    ] = False,
    key: Annotated[
        str | None, typer.Option("--key", help="Encrypt CII pushes with this GUEK (32 hex digits).")
    ] = None,
    auth_key: Annotated[
        str | None,
        typer.Option("--auth-key", help="GAK for the GCM tag (32 hex digits); default: a built-in one."),
    ] = None,
    push_interval: Annotated[
        float, typer.Option("--push-interval", help="Seconds between CII pushes.")
    ] = 5.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the load curve: same seed, same meter.")] = 0,
    speed: Annotated[
        float, typer.Option("--speed", help="Model time runs SPEED times faster than real time.")
    ] = 1.0,
    password: Annotated[
        str, typer.Option("--password", help="LLS password for DLMS clients other than 16 (public).")
    ] = "00000000",
    disturbance: Annotated[
        list[str] | None,
        typer.Option(
            "--disturbance",
            help="KIND:START_S:DURATION_S:MAGNITUDE[:PHASES], kinds voltage_sag, voltage_swell, frequency, thd, "
            "power_factor; repeatable.",
        ),
    ] = None,
    pv: Annotated[float, typer.Option("--pv", help="Peak PV power in W (0: no PV).")] = 0.0,
    faults: Annotated[
        str | None,
        typer.Option(
            "--faults", help="e.g. drop=0.01,flip=0.001,extra=0.01,late=0.1,late_delay=0.5,silent=30+10"
        ),
    ] = None,
    log_frames: Annotated[
        str | None, typer.Option("--log-frames", help="Log raw traffic in hex to PATH ('-' for stderr).")
    ] = None,
) -> None:
    """Simulate a Landis+Gyr E450: optical port (IEC 62056-21 C/E, DLMS/HDLC) or CII pushes."""
    import asyncio

    from meterbridge.simulator.e450 import E450Simulator
    from meterbridge.simulator.e450_model import ModelConfig, disturbances_from
    from meterbridge.simulator.faults import FaultConfig
    from meterbridge.transports import (
        IEC_SIGN_ON,
        MBUS_2400,
        LoggedTransport,
        RealClock,
        ScaledClock,
        Transport,
        open_frame_log,
        open_pty_pair,
        serve_tcp,
    )

    if (pty is None) == (tcp is None):
        raise typer.BadParameter("give exactly one of --pty PATH or --tcp HOST:PORT")
    if speed <= 0:
        raise typer.BadParameter("--speed must be > 0")
    try:
        guek = bytes.fromhex(key) if key else None
        gak = bytes.fromhex(auth_key) if auth_key else None
        config = ModelConfig(pv_peak_w=pv, disturbances=disturbances_from(disturbance or ()))
        fault_config = FaultConfig.parse(faults, seed=seed) if faults else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if (guek is not None and len(guek) != 16) or (gak is not None and len(gak) != 16):
        raise typer.BadParameter("--key and --auth-key are 16 bytes (32 hex digits)")
    if gak is not None and guek is None:
        raise typer.BadParameter("--auth-key needs --key")
    clock = RealClock() if speed == 1 else ScaledClock(RealClock(), speed)
    sim = E450Simulator(
        clock=clock,
        seed=seed,
        config=config,
        dlms_password=password.encode(),
        encryption_key=guek,
        authentication_key=gak,
        faults=fault_config,
    )
    sink = open_frame_log(log_frames) if log_frames else None

    async def serve(port: Transport) -> None:
        if sink is not None:
            port = LoggedTransport(port, sink)
        if cii:
            await sim.push_loop(port, push_interval * speed)  # model seconds: real seconds x speed
        else:
            await sim.serve_optical(port)

    async def main() -> None:
        if pty is not None:
            master, path = await open_pty_pair(pty, line=MBUS_2400 if cii else IEC_SIGN_ON)
            typer.echo(f"E450 {sim.model.logical_device_name} on {path} -> {master.slave_path}", err=True)
            try:
                await serve(master)
            finally:
                await master.close()
        else:
            assert tcp is not None
            host, _, port_text = tcp.rpartition(":")
            if not host or not port_text.isdigit():
                raise typer.BadParameter("--tcp takes HOST:PORT, e.g. 127.0.0.1:4059")
            server = await serve_tcp(serve, host, int(port_text))
            typer.echo(f"E450 {sim.model.logical_device_name} on tcp://{host}:{server.port}", err=True)
            try:
                await asyncio.get_running_loop().create_future()
            finally:
                await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


if importlib.util.find_spec("meterbridge.cli.simulate") is not None:
    from meterbridge.cli.simulate import simulate_app  # type: ignore[import-not-found,unused-ignore]

    simulate_app.command("e450")(simulate_e450)
