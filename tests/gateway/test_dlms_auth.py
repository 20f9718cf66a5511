"""DLMS client meters with LLS and HLS-GMAC in the gateway: the configuration, the driver's shorthand and
the gateway's DLMS source polling the E450 simulator over the wrapper (TCP) and over HDLC (TCP)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from meterbridge.drivers import dlms_client
from meterbridge.errors import ConfigError, MeterbridgeError
from meterbridge.gateway.config import parse_config
from meterbridge.gateway.sources import DlmsSource, build_sources
from meterbridge.protocols.dlms.association import HlsGmac, Lls
from meterbridge.protocols.dlms.security import SecurityKeys
from meterbridge.readings import Reading
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.transports import RealClock, TcpTransport, serve_tcp

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
PASSWORD = "S3cretLLS"
OBJECTS = ["1-0:1.8.0.255", "1-0:32.7.0.255"]


def _sim() -> E450Simulator:
    clock = RealClock()
    return E450Simulator(
        clock=clock,
        seed=5,
        start=clock.now() - timedelta(hours=1),
        dlms_password=PASSWORD.encode(),
        hls_keys=SecurityKeys(GUEK, GAK),
    )


@asynccontextmanager
async def _meter(framing: str) -> AsyncIterator[tuple[E450Simulator, int]]:
    """The simulator on a TCP port: wrapper frames, or HDLC straight away (as behind a TCP-to-serial
    gateway on the meter's HDLC port; one HDLC link per connection, as the gateway opens one per poll)."""
    sim = _sim()
    handler: Callable[[TcpTransport], Awaitable[None]]
    if framing == "wrapper":
        handler = sim.serve_wrapper
    else:

        async def handler(port: TcpTransport) -> None:
            await sim._dlms_session(port, b"")

    async with await serve_tcp(handler, "127.0.0.1", 0) as server:
        yield sim, server.port


def _config(port: int, framing: str, authentication: str, keys: str, extra: str = "") -> str:
    return f"""\
meters:
  - id: e450-auth
    protocol: dlms
    transport: tcp://127.0.0.1:{port}
    wrapper: {"true" if framing == "wrapper" else "false"}
    timeout: 10
    authentication: {authentication}
    objects: {OBJECTS}
    keys:
{keys}{extra}
"""


LLS_KEYS = "      password: {env: TEST_DLMS_PASSWORD}\n"
HLS_KEYS = "      encryption: {env: TEST_DLMS_GUEK}\n      authentication: {file: GAK_FILE}\n"


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    monkeypatch.setenv("TEST_DLMS_PASSWORD", PASSWORD)
    monkeypatch.setenv("TEST_DLMS_GUEK", GUEK.hex())
    gak = tmp_path / "gak"
    gak.write_text(GAK.hex().upper() + "\n")
    return str(gak)


def _source(text: str) -> DlmsSource:
    (source,) = build_sources(parse_config(text))
    assert isinstance(source, DlmsSource)
    return source


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
@pytest.mark.parametrize("authentication", ["lls", "hls", "hls-gmac"])
async def test_gateway_source_reads_the_simulator_with_authentication(
    framing: str, authentication: str, secrets: str
) -> None:
    keys = LLS_KEYS if authentication == "lls" else HLS_KEYS.replace("GAK_FILE", secrets)
    async with _meter(framing) as (sim, port):
        source = _source(_config(port, framing, authentication, keys))
        values = []
        for _poll in range(3):  # HLS: the invocation counter goes on rising from one association to the next
            items = await source.poll()
            readings = [i for i in items if isinstance(i, Reading)]
            assert {str(r.key) for r in readings} == set(OBJECTS)
            assert all(r.meter_id == "e450-auth" for r in readings)
            voltage = next(r for r in readings if str(r.key) == "1-0:32.7.0.255")
            assert voltage.unit == "V" and 200 < float(voltage.value) < 260  # type: ignore[arg-type]
            values.append(next(r.value for r in readings if str(r.key) == "1-0:1.8.0.255"))
        assert values == sorted(values)
        if framing == "hdlc":
            assert sim.dlms_sessions == 3
    auth = source.authentication
    if authentication == "lls":
        assert isinstance(auth, Lls)
    else:
        assert isinstance(auth, HlsGmac)
        assert "S3cret" not in repr(auth) and GUEK.hex() not in repr(auth).lower()


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
async def test_wrong_secrets_are_refused_and_never_echoed(
    framing: str, secrets: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DLMS_PASSWORD", "WrongPass")
    wrong_gak = bytes(range(16)).hex()
    async with _meter(framing) as (_, port):
        for text in (
            _config(port, framing, "lls", LLS_KEYS),
            _config(port, framing, "hls", HLS_KEYS.replace("{file: GAK_FILE}", wrong_gak)),
            # the public client is refused by the management logical device's HLS client address
            _config(port, framing, "none", "      {}\n", extra="    client_address: 1\n"),
        ):
            source = _source(text.replace("    keys:\n      {}\n", ""))
            with pytest.raises(dlms_client.AssociationRefused) as caught:
                await source.poll()
            assert "WrongPass" not in str(caught.value) and wrong_gak not in str(caught.value).lower()


def test_config_client_address_defaults_follow_the_authentication(secrets: str) -> None:
    hls = parse_config(_config(4059, "wrapper", "hls", HLS_KEYS.replace("GAK_FILE", secrets))).meters[0]
    assert hls.authentication == "hls-gmac" and hls.client_address is None
    assert GUEK.hex() not in repr(hls).lower() and GAK.hex() not in repr(hls).lower()
    lls = parse_config(_config(4059, "wrapper", "lls", LLS_KEYS, extra="    client_address: 48\n")).meters[0]
    assert lls.client_address == 48 and PASSWORD not in repr(lls)
    with pytest.raises(ConfigError, match=r"authentication: hls-gmac needs keys\.encryption"):
        parse_config(_config(4059, "wrapper", "hls", "      password: x\n"))
    with pytest.raises(ConfigError, match=r"authentication") as caught:
        parse_config(_config(4059, "wrapper", "hmac", LLS_KEYS))
    assert PASSWORD not in str(caught.value)


def test_driver_shorthand_builds_the_authentication_and_picks_the_client() -> None:
    assert dlms_client.authentication_from() is None
    lls = dlms_client.authentication_from(password="00000000")
    assert isinstance(lls, Lls) and lls.password == b"00000000"
    hls = dlms_client.authentication_from(hls_keys=(GUEK, GAK), invocation_counter=77)
    assert isinstance(hls, HlsGmac) and hls.context.invocation_counter == 77
    assert hls.context.keys.encryption_key == GUEK and hls.context.keys.authentication_key == GAK
    assert [dlms_client.default_client(a) for a in (None, lls, hls)] == [16, 32, 1]
    with pytest.raises(ValueError, match="not both"):
        dlms_client.authentication_from(password="x", hls_keys=(GUEK, GAK))
    with pytest.raises(MeterbridgeError) as caught:
        dlms_client.authentication_from(hls_keys=(GUEK, GAK[:15]))
    assert GAK[:15].hex() not in str(caught.value).lower()


async def test_open_session_shorthand_passes_the_counter_on(secrets: str) -> None:
    async with _meter("wrapper") as (_, port):
        url = f"tcp://127.0.0.1:{port}"
        first = await dlms_client.open_session(url, framing="wrapper", hls_keys=(GUEK, GAK), meter_id="m")
        try:
            assert first.link.client_wport == 1  # type: ignore[attr-defined]
            await first.read_registers(OBJECTS[:1])
        finally:
            await first.close()
        counter = first.invocation_counter
        assert counter is not None and counter > 1
        # a fresh context starting at 1 again is a replay for the meter; going on from the counter is not
        with pytest.raises(dlms_client.AssociationRefused):
            await dlms_client.open_session(url, framing="wrapper", hls_keys=(GUEK, GAK), meter_id="m")
        again = await dlms_client.open_session(
            url, framing="wrapper", hls_keys=(GUEK, GAK), invocation_counter=counter + 10, meter_id="m"
        )
        await again.close()
        lls = await dlms_client.open_session(url, framing="wrapper", password=PASSWORD, meter_id="m")
        assert lls.link.client_wport == 32 and lls.invocation_counter is None  # type: ignore[attr-defined]
        await lls.close()
