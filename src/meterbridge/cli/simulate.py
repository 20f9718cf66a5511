"""``meterbridge simulate``: simulated meters (sub-app), and ``meterbridge simulate mbus``.

Other simulators register their own subcommand on :data:`simulate_app` from their own
module (``simulate_app.command("e450")(...)``).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["simulate_app", "simulate_mbus"]

simulate_app = typer.Typer(
    name="simulate",
    help="Run simulated meters that behave like real ones on a TCP port or a PTY.",
    no_args_is_help=True,
)
app.add_typer(simulate_app, name="simulate")


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise typer.BadParameter(f"--tcp wants HOST:PORT (PORT 0..65535, 0: a free one), got {text!r}")
    return host or "127.0.0.1", int(port)


@simulate_app.command("mbus")
def simulate_mbus(
    tcp: Annotated[
        str | None, typer.Option("--tcp", help="Listen as a transparent M-Bus/TCP gateway on HOST:PORT.")
    ] = None,
    pty: Annotated[
        str | None,
        typer.Option("--pty", help="Create a PTY and a symlink to it at this path (a serial port)."),
    ] = None,
    meters: Annotated[int, typer.Option("--meters", "-n", help="Number of meters (0..250).")] = 10,
    baud: Annotated[int, typer.Option("--baud", help="Bus baud rate (8E1).")] = 2400,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same bus.")] = 0,
    consecutive: Annotated[
        bool, typer.Option("--consecutive", help="Consecutive serial numbers (harder secondary scans).")
    ] = False,
    share: Annotated[
        list[int] | None,
        typer.Option("--share", help="Give meter N (1-based) the primary address of meter N-1 (repeatable)."),
    ] = None,
    multi_telegram: Annotated[
        int, typer.Option("--multi-telegram", help="This many meters send two or more telegrams per readout.")
    ] = 0,
    silent: Annotated[
        list[int] | None, typer.Option("--silent", help="Meter N (1-based) never answers (repeatable).")
    ] = None,
    faults: Annotated[
        list[str] | None,
        typer.Option(
            "--faults",
            "--fault",
            help="Faults on the replies: drop=R,flip=R,extra=R,late=R,late_delay=S,mute=R,silent=START+DURATION. "
            "Also spelled --fault; repeatable (the items are joined with commas).",
        ),
    ] = None,
    log_frames: Annotated[
        str | None, typer.Option("--log-frames", help="Hex dump of raw traffic with timestamps (PATH or -).")
    ] = None,
) -> None:
    """Simulate a wired M-Bus of N meters (electricity, heat, water, gas) with line timing.

    Every meter has a distinct primary address 1..N unless --share is given, a secondary
    address, records whose values evolve, and answers inside EN 13757-2's reply window.
    """
    import asyncio

    from meterbridge.errors import MeterbridgeError
    from meterbridge.simulator.faults import FaultConfig
    from meterbridge.simulator.mbus import build_bus
    from meterbridge.transports import LineSettings, LoggedTransport, Transport, open_frame_log
    from meterbridge.transports.line import Parity

    if tcp is None and pty is None:
        raise typer.BadParameter("give --tcp HOST:PORT or --pty PATH")
    if not 0 <= meters <= 250:
        raise typer.BadParameter("--meters must be 0..250")
    primary = list(range(1, meters + 1))
    for n in share or []:
        if not 2 <= n <= meters:
            raise typer.BadParameter(f"--share {n}: meter numbers are 2..{meters}")
        primary[n - 1] = primary[n - 2]
    try:
        fault_config = FaultConfig.parse(",".join(faults), seed=seed) if faults else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    host_port = _host_port(tcp) if tcp is not None else None
    try:
        line = LineSettings(baud, 8, Parity.EVEN, 1)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--baud") from None
    simulator = build_bus(
        meters,
        seed=seed,
        consecutive=consecutive,
        primary=primary,
        multi_telegram=range(multi_telegram),
        silent=[n - 1 for n in silent or []],
        line=line,
        faults=fault_config,
        epoch=datetime.now(UTC),  # the meters' clocks show the time of day (their values follow --seed)
    )
    log = open_frame_log(log_frames) if log_frames else None

    def wrap(transport: Transport) -> Transport:
        return LoggedTransport(transport, log) if log is not None else transport

    for slave in simulator.slaves:
        typer.echo(
            f"meter primary={slave.primary:3d} secondary={slave.secondary} {slave.model.kind}", err=True
        )

    async def main() -> None:
        from meterbridge.transports.pty import open_pty_pair
        from meterbridge.transports.sockets import serve_tcp

        tasks = []
        if host_port is not None:
            host, port = host_port
            lock = asyncio.Lock()

            async def handler(transport: Transport) -> None:
                async with lock:
                    await simulator.serve(wrap(transport))

            server = await serve_tcp(handler, host, port)
            typer.echo(
                f"M-Bus simulator: {meters} meters at {baud} baud on tcp://{host}:{server.port}", err=True
            )
        if pty is not None:
            master, path = await open_pty_pair(pty, line=line)
            typer.echo(f"M-Bus simulator: {meters} meters at {baud} baud on {pty} -> {path}", err=True)
            tasks.append(asyncio.ensure_future(simulator.serve(wrap(master))))
        await asyncio.Event().wait()

    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())
    except (MeterbridgeError, OSError) as exc:
        where = pty if tcp is None else tcp
        text = (
            str(exc) if isinstance(exc, MeterbridgeError) else f"cannot create {where}: {exc.strerror or exc}"
        )
        typer.echo(f"error: {text}", err=True)
        raise typer.Exit(2) from None
    finally:
        if log is not None:
            log.close()
