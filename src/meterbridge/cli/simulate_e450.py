"""``meterbridge simulate e450``: a virtual Landis+Gyr E450 on a PTY, a TCP port, and/or the DLMS wrapper.

* ``--pty PATH`` / ``--tcp HOST:PORT``: the optical port (IEC 62056-21 modes C/E, DLMS over
  HDLC), or with ``--cii`` the customer interface (pushes, 2400 8E1), on a PTY that readers
  open as a serial port, or on TCP as behind a TCP-to-serial converter.
* ``--wrapper-tcp HOST:PORT`` / ``--wrapper-udp HOST:PORT``: the same meter as a G3-PLC meter
  reached by a head-end, DLMS over the IEC 62056-47 wrapper (the standard port is 4059).

Any combination may be given (one model behind all of them); port 0 picks a free port. Each
endpoint is announced on stderr (``E450 <name>: <what> on <where>``), then ``E450 <name>:
ready``. SIGTERM and Ctrl-C stop it cleanly (the PTY link is removed).

Registers itself on the ``simulate`` sub-app of ``meterbridge.cli.simulate`` (owned by
the M-Bus simulator). Until that module exists the command is not registered.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Annotated

import typer

__all__ = ["simulate_e450"]


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 0xFFFF:
        raise typer.BadParameter(f"{option} takes HOST:PORT (e.g. 127.0.0.1:4059), got {text!r}")
    return host.strip("[]"), int(port)


def simulate_e450(
    pty: Annotated[
        str | None,
        typer.Option(
            "--pty",
            help="Optical port (or the CII with --cii) on a PTY; a symlink at PATH that readers open as a serial port.",
        ),
    ] = None,
    tcp: Annotated[
        str | None,
        typer.Option(
            "--tcp",
            help="Optical port (or the CII with --cii) on TCP HOST:PORT, as behind a TCP-to-serial converter.",
        ),
    ] = None,
    wrapper_tcp: Annotated[
        str | None,
        typer.Option(
            "--wrapper-tcp",
            help="DLMS over the IEC 62056-47 wrapper on TCP HOST:PORT (a G3-PLC meter as a head-end "
            "reaches it; standard port 4059).",
        ),
    ] = None,
    wrapper_udp: Annotated[
        str | None,
        typer.Option("--wrapper-udp", help="DLMS over the IEC 62056-47 wrapper on UDP HOST:PORT."),
    ] = None,
    cii: Annotated[
        bool,
        typer.Option(
            "--cii",
            help="--pty/--tcp is the customer interface: push every --push-interval s at 2400 8E1 "
            "instead of answering as the optical port.",
        ),
    ] = False,
    key: Annotated[
        str | None, typer.Option("--key", help="Encrypt CII pushes with this GUEK (32 hex digits).")
    ] = None,
    auth_key: Annotated[
        str | None,
        typer.Option("--auth-key", help="GAK for the GCM tag (32 hex digits); default: a built-in one."),
    ] = None,
    hls: Annotated[
        str | None,
        typer.Option(
            "--hls",
            help="GUEK:GAK (32 hex digits each): client 1 (management) must associate with HLS-GMAC and "
            "glo-ciphered APDUs under these keys.",
        ),
    ] = None,
    push_interval: Annotated[
        float, typer.Option("--push-interval", help="Real seconds between CII pushes (whatever --speed is).")
    ] = 5.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the load curve: same seed, same meter.")] = 0,
    speed: Annotated[
        float, typer.Option("--speed", help="Model time runs SPEED times faster than real time.")
    ] = 1.0,
    password: Annotated[
        str,
        typer.Option("--password", help="LLS password for DLMS clients other than 16 (public)."),
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
        list[str] | None,
        typer.Option(
            "--faults",
            "--fault",
            help="Damage what the meter sends, e.g. drop=0.01,flip=0.001,extra=0.01,late=0.1,late_delay=0.5,"
            "mute=0.05,silent=30+10. Also spelled --fault; repeatable (the items are joined with commas).",
        ),
    ] = None,
    log_frames: Annotated[
        str | None,
        typer.Option(
            "--log-frames",
            help="Log raw traffic in hex to PATH ('-' for stderr): PTY, TCP and wrapper TCP connections.",
        ),
    ] = None,
) -> None:
    """Simulate a Landis+Gyr E450: optical port, CII pushes, or DLMS over the wrapper (G3-PLC)."""
    import asyncio
    import signal

    from meterbridge.protocols.dlms.security import SecurityKeys
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

    if pty is not None and tcp is not None:
        raise typer.BadParameter("give --pty PATH or --tcp HOST:PORT, not both (the meter has one such port)")
    if pty is None and tcp is None and wrapper_tcp is None and wrapper_udp is None:
        raise typer.BadParameter("give at least one of --pty, --tcp, --wrapper-tcp, --wrapper-udp")
    if cii and pty is None and tcp is None:
        raise typer.BadParameter("--cii needs --pty or --tcp (the port the pushes go out on)")
    if speed <= 0:
        raise typer.BadParameter("--speed must be > 0")
    if push_interval <= 0:
        raise typer.BadParameter("--push-interval must be > 0")
    tcp_at = _host_port(tcp, "--tcp") if tcp is not None else None
    wrapper_tcp_at = _host_port(wrapper_tcp, "--wrapper-tcp") if wrapper_tcp is not None else None
    wrapper_udp_at = _host_port(wrapper_udp, "--wrapper-udp") if wrapper_udp is not None else None
    from meterbridge.cli.listen import parse_key

    guek = parse_key(key, "--key")
    gak = parse_key(auth_key, "--auth-key")
    try:
        config = ModelConfig(pv_peak_w=pv, disturbances=disturbances_from(disturbance or ()))
        fault_config = FaultConfig.parse(",".join(faults), seed=seed) if faults else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if gak is not None and guek is None:
        raise typer.BadParameter("--auth-key needs --key")
    hls_keys = None
    if hls is not None:
        ek_text, sep, ak_text = hls.partition(":")
        message = "--hls must be GUEK:GAK, two keys of 32 hex digits (16 bytes) each"
        if not sep:
            raise typer.BadParameter(message, param_hint="--hls")
        try:
            ek, ak = parse_key(ek_text, "--hls"), parse_key(ak_text, "--hls")
            assert ek is not None and ak is not None  # parse_key of a text is bytes or raises
            hls_keys = SecurityKeys(ek, ak)
        except (typer.BadParameter, ValueError):
            raise typer.BadParameter(message, param_hint="--hls") from None
    clock = RealClock() if speed == 1 else ScaledClock(RealClock(), speed)
    sim = E450Simulator(
        clock=clock,
        seed=seed,
        config=config,
        dlms_password=password.encode(),
        encryption_key=guek,
        authentication_key=gak,
        faults=fault_config,
        hls_keys=hls_keys,
    )
    sink = open_frame_log(log_frames) if log_frames else None
    name = sim.model.logical_device_name
    what = "CII push" if cii else "optical port"

    def announce(text: str) -> None:
        typer.echo(f"E450 {name}: {text}", err=True)

    def logged(port: Transport) -> Transport:
        return LoggedTransport(port, sink) if sink is not None else port

    async def serve(port: Transport) -> None:
        port = logged(port)
        if cii:
            await sim.push_loop(port, push_interval * speed)  # model seconds: real seconds x speed
        else:
            await sim.serve_optical(port)

    async def serve_wrapper(port: Transport) -> None:
        await sim.serve_wrapper(logged(port))

    async def main() -> None:
        main_task = asyncio.current_task()
        assert main_task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
        async with contextlib.AsyncExitStack() as stack:
            jobs = []
            if pty is not None:
                master, path = await open_pty_pair(pty, line=MBUS_2400 if cii else IEC_SIGN_ON)
                stack.push_async_callback(master.close)
                announce(f"{what} on {path} -> {master.slave_path}")
                jobs.append(serve(master))
            if tcp_at is not None:
                server = await serve_tcp(serve, *tcp_at)
                stack.push_async_callback(server.close)
                announce(f"{what} on tcp://{server.host}:{server.port}")
            if wrapper_tcp_at is not None:
                wrapper = await serve_tcp(serve_wrapper, *wrapper_tcp_at)
                stack.push_async_callback(wrapper.close)
                announce(f"DLMS wrapper on tcp://{wrapper.host}:{wrapper.port}")
            if wrapper_udp_at is not None:
                udp = await sim.serve_wrapper_udp(*wrapper_udp_at)
                stack.push_async_callback(udp.close)
                announce(f"DLMS wrapper on udp://{udp.host}:{udp.port}")
            announce("ready")
            if jobs:
                await asyncio.gather(*jobs)
            else:
                await asyncio.get_running_loop().create_future()

    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(main())


if importlib.util.find_spec("meterbridge.cli.simulate") is not None:
    from meterbridge.cli.simulate import simulate_app  # type: ignore[import-not-found,unused-ignore]

    simulate_app.command("e450")(simulate_e450)
