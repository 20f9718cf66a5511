"""Decode throughput of meterbridge's M-Bus codec next to pyMeterBus 0.8.5, in one run.

Both decode the same libmbus corpus frames (tests/vectors/mbus-libmbus/test-frames) from
bytes to values: meterbridge to ``VariableDataResponse`` records with exact values,
pyMeterBus to ``telegram.records[i].parsed_value`` (its value after the VIF exponent).
Only frames that both decode are timed. The two run interleaved in slices and the median
slice rate of each counts; rates are per CPU second of this process (the machine is shared). Prints frames per second and the ratio.

    .venv/bin/python bench/mbus_decode.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import gc
import statistics
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
    """Frames per CPU second over ``seconds`` of back-to-back passes over the corpus.

    CPU time of this process (``time.process_time``), not wall time: on a machine shared
    with other jobs, waiting for a core is not decoding time.
    """
    values = fn(frames)
    gc.collect()
    passes = 0
    start = time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        values = fn(frames)
        passes += 1
    return passes * len(frames) / elapsed, values


def interleaved(frames: list[bytes], seconds: float, rounds: int = 5) -> tuple[float, float, int, int]:
    """Alternate the two decoders in ``rounds`` slices so that load changes on the shared
    machine hit both alike; the median slice rate of each counts."""
    ours_rates: list[float] = []
    theirs_rates: list[float] = []
    ours_values = theirs_values = 0
    for _ in range(rounds):
        r, ours_values = rate(ours, frames, seconds / rounds)
        ours_rates.append(r)
        r, theirs_values = rate(theirs, frames, seconds / rounds)
        theirs_rates.append(r)
    return statistics.median(ours_rates), statistics.median(theirs_rates), ours_values, theirs_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="seconds per decoder, split into 5 interleaved slices; the median slice counts (default 2)",
    )
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
    ours_rate, theirs_rate, ours_values, theirs_values = interleaved(frames, args.seconds)
    print(
        f"corpus: {len(frames)} frames decoded by both; skipped (pyMeterBus fails): {', '.join(skipped) or '-'}"
    )
    print(f"{'decoder':<28}{'frames/s':>12}{'values/frame':>14}   (per CPU second)")
    print(f"{'meterbridge':<28}{ours_rate:>12,.0f}{ours_values / len(frames):>14.1f}")
    print(f"{'pyMeterBus 0.8.5':<28}{theirs_rate:>12,.0f}{theirs_values / len(frames):>14.1f}")
    print(f"ratio meterbridge / pyMeterBus: {ours_rate / theirs_rate:.1f}x")


if __name__ == "__main__":
    main()
