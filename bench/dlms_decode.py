"""Benchmark: E450 CII pushes per second, meterbridge vs smartmeter-datacollector 2.0.0 (gurux-dlms).

Both decode the same four HDLC frames of tests/vectors/dlms/e450_cii_push_unencrypted.json
(HDLC -> LLC -> General Block Transfer -> Data-Notification -> register values with meter id
and timestamp), side by side in one run. The reference is used the way its own tests use it:
``HdlcDlmsParser`` with a ``Cosem`` of the L+G E450 register set, fed frame by frame.

Run: .venv/bin/python bench/dlms_decode.py [--seconds 3] [--rounds 10]
(needs the bench extra: .venv/bin/pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from decimal import Decimal
from pathlib import Path

from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.push import PushDecoder, PushReadings, RegisterFormat

VECTOR = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "dlms" / "e450_cii_push_unencrypted.json"


def _frames() -> tuple[list[bytes], dict[str, int], str]:
    vector = json.loads(VECTOR.read_text())
    frames = [bytes.fromhex(f) for f in vector["frames_hex"]]
    return frames, vector["expected"]["values"], vector["expected"]["device_id"]


# one long-lived decoder per meter, as a listener holds it; currents scaled by 10**-2 like the reference does
_DECODER = PushDecoder(
    framing="hdlc",
    formats={ObisCode.parse(f"1-0:{c}.7.0.255"): RegisterFormat(-2) for c in (31, 51, 71)},
)


def meterbridge_push(frames: list[bytes]) -> dict[str, object]:
    decoder = _DECODER
    for frame in frames:
        decoder.receive_data(frame)
    (event,) = decoder.events()
    assert isinstance(event, PushReadings), event
    return {str(r.key): r.value for r in event.readings} | {"meter": event.meter_id}


_REFERENCE: list[object] = []


def reference_push(frames: list[bytes]) -> dict[str, object]:
    if not _REFERENCE:  # one long-lived parser, as its LGE450 meter holds it
        from smartmeter_datacollector.smartmeter.cosem import Cosem
        from smartmeter_datacollector.smartmeter.hdlc_dlms_parser import HdlcDlmsParser

        _REFERENCE.append(HdlcDlmsParser(Cosem(fallback_id="bench")))
    parser = _REFERENCE[0]
    for frame in frames:
        parser.append_to_hdlc_buffer(frame)
        if parser.extract_data_from_hdlc_frames():
            stamp = parser.extract_message_time()
            objects = parser.parse_to_dlms_objects()
            bundle = parser.convert_dlms_bundle_to_reader_data(objects, stamp)
            return {str(p.obis): p.value for p in bundle.data_points} | {"meter": bundle.source}
    raise AssertionError("reference did not complete the push")


def _round(fn, frames: list[bytes], seconds: float) -> float:
    """Pushes per second over one timed round of about ``seconds``."""
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(5):
            fn(frames)
        n += 5
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def _race(contenders, frames: list[bytes], seconds: float, rounds: int) -> list[list[float]]:
    """Alternate short rounds so that both see the same machine load (it is shared)."""
    for _, fn in contenders:
        fn(frames)  # warm up (imports, caches)
    rates: list[list[float]] = [[] for _ in contenders]
    for _ in range(rounds):
        for k, (_, fn) in enumerate(contenders):
            rates[k].append(_round(fn, frames, seconds / rounds))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per contender (default 3 s)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds (default 10)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the reference logs every object at DEBUG/INFO

    frames, expected, device = _frames()
    ours = meterbridge_push(frames)
    assert ours["meter"] == device
    scaled = {f"1-0:{c}.7.0.255" for c in (31, 51, 71)}
    for code, value in expected.items():
        assert ours[code] == (Decimal(value).scaleb(-2) if code in scaled else value), (code, ours.get(code))
    try:
        theirs = reference_push(frames)
        reference_ok = True
        for code in expected:  # both decoders agree on every register
            assert float(ours[code]) == theirs[code.replace(".255", "*255")], code  # type: ignore[arg-type]
    except ImportError as exc:
        print(f"reference not installed ({exc}); run .venv/bin/pip install smartmeter-datacollector==2.0.0")
        reference_ok = False

    contenders = [("meterbridge PushDecoder", meterbridge_push)]
    if reference_ok:
        contenders.append(("smartmeter-datacollector 2.0.0 (gurux-dlms)", reference_push))
    rates = _race(contenders, frames, args.seconds, args.rounds)
    print(
        f"E450 CII push: {len(frames)} HDLC frames, {sum(map(len, frames))} bytes, {len(expected)} registers"
    )
    print(f"{args.rounds} alternating rounds, {args.seconds:.1f} s per contender")
    print(f"{'decoder':<46} {'median pushes/s':>16} {'best pushes/s':>14}")
    for (name, _), r in zip(contenders, rates, strict=True):
        print(f"{name:<46} {statistics.median(r):>16,.0f} {max(r):>14,.0f}")
    if reference_ok:
        print(f"reference meter id: {theirs['meter']}, values: {len(theirs) - 1}")
        print(
            f"ratio meterbridge / reference: median {statistics.median(rates[0]) / statistics.median(rates[1]):.1f}x, "
            f"best {max(rates[0]) / max(rates[1]):.1f}x"
        )


if __name__ == "__main__":
    main()
