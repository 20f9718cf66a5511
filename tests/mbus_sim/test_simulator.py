"""The simulated M-Bus slaves and bus, sans-IO: addressing, FCB, pages, collisions."""

from __future__ import annotations

import pytest

from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.mbus import (
    ApplicationReset,
    LinkNoise,
    MBusLink,
    ReqUd2,
    SelectSecondary,
    SetBaudRate,
    SetPrimaryAddress,
    SndNke,
    VariableDataResponse,
    decode_telegram,
)
from meterbridge.simulator.mbus import build_bus, merge_replies
from meterbridge.simulator.mbus_slave import MeterModel, make_slave


def events(data: bytes) -> list[object]:
    link = MBusLink(drop_echo=False)
    link.receive_data(data)
    link.receive_data(b"")
    out = []
    while (e := link.next_event()) is not NEED_DATA:
        out.append(e)
    return out


def records(frame: bytes | None) -> object:
    """A telegram's records (the access number in its header counts readouts)."""
    response = decode_telegram(frame or b"")
    assert isinstance(response, VariableDataResponse)
    return response.records, response.more_records_follow


def test_counters_only_rise_and_values_move() -> None:
    for kind in ("electricity", "heat", "water", "gas"):
        model = MeterModel(kind, seed=3)
        values = [model.counter(t) for t in range(0, 3 * 86400, 600)]
        assert values == sorted(values) and values[-1] > values[0]
        assert min(model.level(t) for t in range(0, 86400, 600)) >= 0.2


def test_slave_answers_its_address_only() -> None:
    slave = make_slave(5, 12345678, "water", seed=1)
    assert slave.respond(SndNke(5), 0) == b"\xe5"
    assert slave.respond(SndNke(6), 0) is None
    assert slave.respond(SndNke(255), 0) is None  # broadcast without reply: acts, stays silent
    assert slave.respond(SndNke(254), 0) == b"\xe5"  # broadcast with reply
    response = decode_telegram(slave.respond(ReqUd2(5, fcb=True), 10) or b"")
    assert isinstance(response, VariableDataResponse)
    assert response.identification == "12345678" and response.medium_name == "water"


def test_unconfigured_address_zero() -> None:
    slave = make_slave(0, 11111111, "gas", seed=1)
    assert slave.respond(SndNke(0), 0) == b"\xe5"


def test_fcb_repeat_and_multi_telegram_pages() -> None:
    slave = make_slave(7, 22222222, "heat", seed=2, history_months=14)
    pages = slave.pages(100)
    assert len(pages) >= 2
    assert slave.respond(SndNke(7), 100) == b"\xe5"
    first = slave.respond(ReqUd2(7, fcb=True), 100)
    assert records(first) == records(pages[0])
    assert slave.respond(ReqUd2(7, fcb=True), 100) == first  # FCB not toggled: the same bytes again
    second = slave.respond(ReqUd2(7, fcb=False), 100)
    assert records(second) == records(pages[1])
    decoded = [decode_telegram(p) for p in pages]
    assert all(d.more_records_follow for d in decoded[:-1]) and not decoded[-1].more_records_follow
    assert slave.respond(ApplicationReset(7), 100) == b"\xe5"
    assert records(slave.respond(ReqUd2(7, fcb=True), 100)) == records(pages[0])


def test_selection_by_secondary_address_with_wildcards() -> None:
    slave = make_slave(1, 12345678, "electricity", seed=1)
    assert slave.respond(SelectSecondary("1234FFFFFFFFFFFF"), 0) == b"\xe5"
    assert slave.selected
    assert slave.respond(ReqUd2(253, fcb=True), 0) is not None
    assert slave.respond(SelectSecondary("9FFFFFFFFFFFFFFF"), 0) is None
    assert not slave.selected and slave.respond(ReqUd2(253), 0) is None
    medium = f"{slave.secondary.medium:02X}"
    assert slave.respond(SelectSecondary("FFFFFFFFFFFFFF" + medium), 0) == b"\xe5"
    assert slave.respond(SndNke(253), 0) == b"\xe5" and not slave.selected


def test_change_primary_address() -> None:
    slave = make_slave(1, 12345678, "electricity", seed=1)
    assert slave.respond(SetPrimaryAddress(1, 42), 0) == b"\xe5"
    assert slave.primary == 42 and slave.respond(SndNke(1), 0) is None


def test_silent_meter() -> None:
    slave = make_slave(1, 12345678, "electricity", seed=1)
    slave.silent = True
    assert slave.respond(SndNke(1), 0) is None


def test_merge_identical_e5_is_clean_and_shifted_is_garbled() -> None:
    assert merge_replies([(20, b"\xe5"), (20, b"\xe5")]) == (20, b"\xe5")
    start, data = merge_replies([(20, b"\xe5"), (25, b"\xe5")])
    assert start == 20 and data != b"\xe5"
    start, data = merge_replies([(20, b"\xe5"), (40, b"\xe5")])  # one after the other
    assert data == b"\xe5\xe5"
    a = make_slave(1, 10000001, "water", seed=1).pages(0)[0]
    b = make_slave(1, 10000002, "water", seed=1).pages(0)[0]
    _, merged = merge_replies([(30, a), (30, b)])
    assert all(not isinstance(e, type(decode_telegram(a))) for e in events(merged))
    assert any(isinstance(e, LinkNoise) for e in events(merged))


def test_bus_collision_counted_and_shared_address() -> None:
    sim = build_bus(3, seed=4, primary=[1, 1, 2], consecutive=True, first_id=30000000)
    reply = sim.handle(SndNke(1), 0)
    assert reply is not None and sim.stats.collisions == 1
    assert sim.handle(SndNke(9), 0) is None


def test_baud_rate_answer() -> None:
    slave = make_slave(1, 12345678, "electricity", seed=1)
    assert slave.respond(SetBaudRate(1, 9600), 0) == b"\xe5"


def test_build_bus_validates() -> None:
    with pytest.raises(ValueError):
        build_bus(251)
    with pytest.raises(ValueError):
        build_bus(2, primary=[1])
    with pytest.raises(ValueError):
        build_bus(1, primary=[251])
    bus = build_bus(20, seed=9)
    assert sorted(s.primary for s in bus.slaves) == list(range(1, 21))
    assert len({str(s.secondary) for s in bus.slaves}) == 20


def test_the_meters_clocks_start_at_the_epoch_given() -> None:
    from datetime import UTC, datetime

    default = build_bus(1, seed=3).slaves[0]
    started = datetime(2027, 5, 17, 8, 41, 30, tzinfo=UTC)
    live = build_bus(1, seed=3, epoch=started).slaves[0]
    for slave, clock in ((default, datetime(2026, 1, 1, 0, 2)), (live, datetime(2027, 5, 17, 8, 44))):
        slave.respond(SndNke(slave.primary), 0)
        response = decode_telegram(slave.respond(ReqUd2(slave.primary, fcb=True), 150) or b"")
        times = [r.value for r in response.records if r.vif & 0x7F == 0x6D and r.storage == 0]
        assert times == [clock]  # the epoch plus 150 s, to the minute
    # the values follow the seed, not the clock
    a = decode_telegram(default.respond(ReqUd2(default.primary, fcb=False), 150) or b"")
    b = decode_telegram(live.respond(ReqUd2(live.primary, fcb=False), 150) or b"")
    assert [r.value for r in a.records if r.vif & 0x7F != 0x6D][:3] == [
        r.value for r in b.records if r.vif & 0x7F != 0x6D
    ][:3]
