"""Decode throughput of meterbridge's M-Bus codec next to pyMeterBus 0.8.5, in one run.

Both decode the same libmbus corpus frames (tests/vectors/mbus-libmbus/test-frames) from
bytes to values: meterbridge to ``VariableDataResponse`` records with exact values,
pyMeterBus to ``telegram.records[i].parsed_value`` (its value after the VIF exponent).
Only frames that both decode are timed. Prints frames per second and the ratio.

    .venv/bin/python bench/mbus_decode.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

from meterbridge.protocols.mbus import decode_telegram

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "mbus-libmbus" / "test-frames"


def ours(frames: list[bytes]) -> int:
    n = 0
    for data in frames:
        response = decode_telegram(data)
        for record in getattr(response, "records", ()):
            _ = record.value
            n += 1
        for counter in getattr(response, "counters", ()):
            _ = counter.value
            n += 1
    return n


def theirs(frames: list[bytes]) -> int:
    import meterbus

    n = 0
    for data in frames:
        telegram = meterbus.load(data)
        for record in telegram.records:
            _ = record.parsed_value
            n += 1
    return n


def rate(fn, frames: list[bytes], seconds: float) -> tuple[float, int]:
    fn(frames)  # warm up
    rounds = 0
    gc.collect()
    start = time.perf_counter()
    deadline = start + seconds
    values = 0
    while True:
        values = fn(frames)
        rounds += 1
        now = time.perf_counter()
        if now >= deadline:
            break
    return rounds * len(frames) / (now - start), values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per contender (default 2)")
    args = parser.parse_args()
    import meterbus

    frames: list[bytes] = []
    skipped: list[str] = []
    for path in sorted(CORPUS.glob("*.hex")):
        data = bytes.fromhex(path.read_text())
        try:
            decode_telegram(data)
            telegram = meterbus.load(data)
            for record in telegram.records:
                _ = record.parsed_value
        except Exception as exc:  # a frame pyMeterBus cannot decode is left out for both
            skipped.append(f"{path.stem} ({type(exc).__name__})")
            continue
        frames.append(data)
    ours_rate, ours_values = rate(ours, frames, args.seconds)
    theirs_rate, theirs_values = rate(theirs, frames, args.seconds)
    print(
        f"corpus: {len(frames)} frames decoded by both; skipped (pyMeterBus fails): {', '.join(skipped) or '-'}"
    )
    print(f"{'decoder':<28}{'frames/s':>12}{'values/frame':>14}")
    print(f"{'meterbridge':<28}{ours_rate:>12,.0f}{ours_values / len(frames):>14.1f}")
    print(f"{'pyMeterBus 0.8.5':<28}{theirs_rate:>12,.0f}{theirs_values / len(frames):>14.1f}")
    print(f"ratio meterbridge / pyMeterBus: {ours_rate / theirs_rate:.1f}x")


if __name__ == "__main__":
    main()
