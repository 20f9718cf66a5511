"""meterbridge.simulator: virtual meters built from the protocol codecs in the meter role (see ARCHITECTURE.md).

The virtual Landis+Gyr E450 (``e450``, ``e450_model``, ``e450_cosem``, ``e450_push``,
``e450_wrapper``) and generic fault injection (``faults``) are exported here; the virtual
M-Bus lives in ``meterbridge.simulator.mbus``.

Starting the E450 in-process (``make demo``, tests)
===================================================

One :class:`E450Simulator` is one meter: one register model behind all its ports. Each
``serve_*`` / ``push_loop`` coroutine runs until cancelled (or its port closes), so a demo
runs them side by side::

    import asyncio
    from meterbridge.simulator import E450Simulator
    from meterbridge.transports import IEC_SIGN_ON, MBUS_2400, RealClock, open_pty_pair, serve_tcp

    async def run_e450(guek: bytes) -> None:
        sim = E450Simulator(clock=RealClock(), seed=1, encryption_key=guek)
        optical, _ = await open_pty_pair("/tmp/e450-optical", line=IEC_SIGN_ON)  # IEC 62056-21 + DLMS/HDLC
        cii, _ = await open_pty_pair("/tmp/e450-cii", line=MBUS_2400)            # encrypted CII pushes
        wrapper = await serve_tcp(sim.serve_wrapper, "127.0.0.1", 4059)         # DLMS wrapper, TCP
        udp = await sim.serve_wrapper_udp("127.0.0.1", 4059)                     # DLMS wrapper, UDP
        try:
            await asyncio.gather(sim.serve_optical(optical), sim.push_loop(cii, interval=5.0))
        finally:
            for closing in (optical, cii, wrapper, udp):
                await closing.close()

* ``await sim.serve_optical(port)``: the optical port on any Transport (a PTY master, one TCP
  connection - ``await serve_tcp(sim.serve_optical, host, port)`` serves every connection).
* ``await sim.push_loop(port, interval, count=None)``: the CII pushes; ``interval`` in seconds
  of the simulator's clock. With ``encryption_key`` (GUEK) they are general-glo-ciphered;
  the tag uses ``authentication_key`` (GAK), by default a built-in key, so a reader given only
  the GUEK decrypts but cannot verify - as in the field.
* ``await sim.serve_wrapper(port)`` per TCP connection, ``await sim.serve_wrapper_udp(host,
  port)`` -> :class:`WrapperUdpServer` (``.port``, ``await .close()``).
* ``hls_keys=SecurityKeys(guek, gak)``: the management client (1) must associate with
  HLS-GMAC and glo-ciphered APDUs, as head-ends do on G3-PLC; the public client (16) needs
  nothing, other clients the LLS ``dlms_password``.
* ``clock``: ``RealClock()`` for real ports; ``ScaledClock(RealClock(), speed)`` for a fast
  model; ``VirtualClock()`` with in-memory ports (``pipe_pair``) in tests.
* The pushes carry local time without deviation (as the real E450): give the push decoder the
  meter's time zone (``Europe/Zurich`` unless ``ModelConfig(timezone=...)`` says otherwise).

As a separate process
=====================

``meterbridge simulate e450`` (``meterbridge.cli.simulate_e450``) starts the same meter::

    meterbridge simulate e450 --pty /tmp/e450-optical --wrapper-tcp 127.0.0.1:4059
    meterbridge simulate e450 --pty /tmp/e450-cii --cii --key 000102030405060708090A0B0C0D0E0F

It prints ``E450 <name>: <what> on <where>`` for each endpoint, then ``E450 <name>: ready``
on stderr, and stops cleanly on SIGTERM. Two processes are two meters; for one meter on
both the optical port and the CII, use the in-process API above.
"""

from meterbridge.simulator.e450 import PUBLIC_CLIENT, E450Simulator
from meterbridge.simulator.e450_model import Disturbance, E450Model, ModelConfig, Snapshot
from meterbridge.simulator.e450_push import CiiPushEncoder
from meterbridge.simulator.e450_wrapper import WrapperSessions, WrapperUdpServer
from meterbridge.simulator.faults import FaultConfig, FaultyTransport, run_with_outages

__all__ = [
    "PUBLIC_CLIENT",
    "CiiPushEncoder",
    "Disturbance",
    "E450Model",
    "E450Simulator",
    "FaultConfig",
    "FaultyTransport",
    "ModelConfig",
    "Snapshot",
    "WrapperSessions",
    "WrapperUdpServer",
    "run_with_outages",
]
