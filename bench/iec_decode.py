"""IEC 62056-21 readout decoding: meterbridge next to the PyPI package iec62056-21 0.0.2, same frame, one run.

The frame is the Landis+Gyr E350 mode C readout of tests/vectors/iec62056-21 (22 data lines,
``STX ... ! CR LF ETX BCC``). Every contender checks the BCC and splits the data lines;
"to values" means every value ends as an exact number (``int``/``Decimal``) or text, with its unit.

- ``iec62056-21 0.0.2``: ``ReadoutDataMessage.from_bytes`` (values stay strings).
- ``iec62056-21 0.0.2 + values``: the same, then numbers converted with ``Decimal``.
- ``meterbridge readout_values``: BCC, grammar, OBIS-aware exact values, no message objects.
- ``meterbridge DataMessage``: frozen ``DataMessage``/``DataSet``/``DataValue`` objects, then ``.value``.
- ``meterbridge decode_readout + to_readings``: what the optical driver and ``decode iec62056-21`` do
  with a readout: identification line and data message objects, then one ``Reading`` per data set
  (meter id, OBIS key, exact value, unit, name). More work than the reference does, on our side.
- ``meterbridge readout_readings``: the same ``Reading`` list straight from the frame bytes (BCC,
  grammar, meter id, readings; no message objects), checked equal to the line above.

Timing: rounds of 200 readouts alternate between contenders; each round is measured in CPU
time of this process (the machine is shared: time spent in other processes is not counted) and
the median round of each counts. Ratios are against the reference's plain parse and against
the reference + values.

    .venv/bin/python bench/iec_decode.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    decode_readout,
    readout_readings,
    readout_values,
    to_readings,
)

VECTOR = (
    Path(__file__).resolve().parents[1] / "tests" / "vectors" / "iec62056-21" / "lgz_e350_mode_c_readout.json"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="total measuring time")
    args = parser.parse_args()

    raw = bytes.fromhex(json.loads(VECTOR.read_text())["telegram_hex"])
    frame = raw[raw.index(b"\x02") :]

    try:
        from iec62056_21.messages import ReadoutDataMessage
    except ImportError:
        raise SystemExit("install the reference first: .venv/bin/pip install iec62056-21==0.0.2") from None

    def reference() -> object:
        return ReadoutDataMessage.from_bytes(frame)

    def reference_values() -> object:
        message = ReadoutDataMessage.from_bytes(frame)
        out = []
        for line in message.data_block.data_lines:
            for s in line.data_sets:
                try:
                    value: object = Decimal(s.value)
                except InvalidOperation:
                    value = s.value
                out.append((s.address, value, s.unit))
        return out

    def ours_values() -> object:
        return readout_values(frame)

    def ours_objects() -> object:
        message = DataMessage.decode(frame)
        return [(s.address, s.value, s.unit) for line in message.lines for s in line]

    received = datetime(2026, 5, 4, 11, 39, 21, tzinfo=UTC)

    def ours_readings() -> object:
        readout = decode_readout(raw)
        return to_readings(
            readout.message.data_sets, received_at=received, identification=readout.identification
        )

    identification = decode_readout(raw).identification

    def ours_direct() -> object:
        return readout_readings(frame, received_at=received, identification=identification)

    contenders: dict[str, Callable[[], object]] = {
        "iec62056-21 0.0.2 (parse)": reference,
        "iec62056-21 0.0.2 + values": reference_values,
        "meterbridge readout_values": ours_values,
        "meterbridge DataMessage + .value": ours_objects,
        "meterbridge decode_readout + to_readings": ours_readings,
        "meterbridge readout_readings": ours_direct,
    }
    # sanity: same number of data sets everywhere, our values equal the reference's strings
    ref = reference_values()
    ours = ours_values()
    assert isinstance(ref, list) and isinstance(ours, list) and len(ref) == len(ours) == 22
    for (ra, rv, ru), (oa, ov, ou) in zip(ref, ours, strict=True):
        assert ra == oa and (ru or None) == ou, (ra, oa)
        assert str(ov) == str(rv).strip() or (isinstance(rv, Decimal) and Decimal(str(ov)) == rv), (
            ra,
            rv,
            ov,
        )

    objects = ours_objects()
    assert objects == ours, "DataMessage values differ from readout_values"
    readings = ours_readings()
    assert isinstance(readings, list) and isinstance(objects, list)
    addressed = [(a, v, u) for a, v, u in objects if a]  # every data set of this readout has an address
    assert len(readings) == len(addressed) == 22
    for reading, (_, value, unit) in zip(readings, addressed, strict=True):
        assert (reading.value, reading.unit) == (value, unit), (reading, value, unit)
    direct = ours_direct()
    assert direct == readings and [r.name for r in direct] == [r.name for r in readings]

    rounds: dict[str, list[float]] = {name: [] for name in contenders}
    batch = 200
    deadline = time.perf_counter() + args.seconds
    while time.perf_counter() < deadline:
        for name, fn in contenders.items():
            start = time.process_time()
            for _ in range(batch):
                fn()
            rounds[name].append((time.process_time() - start) / batch)
    best = {name: statistics.median(times) for name, times in rounds.items()}

    base = best["iec62056-21 0.0.2 (parse)"]
    base_values = best["iec62056-21 0.0.2 + values"]
    print(
        f"IEC 62056-21 readout decode, {len(frame)}-byte frame, 22 data lines,"
        f" median of {min(map(len, rounds.values()))} rounds (CPU time)"
    )
    print(f"{'contender':42} {'readouts/s':>12} {'us/readout':>11} {'vs reference':>13}")
    for name, seconds in best.items():
        print(f"{name:42} {1 / seconds:12,.0f} {seconds * 1e6:11.1f} {base / seconds:12.2f}x")
    for name in (
        "meterbridge readout_values",
        "meterbridge DataMessage + .value",
        "meterbridge decode_readout + to_readings",
        "meterbridge readout_readings",
    ):
        print(
            f"ratio {name} / iec62056-21 parse: {base / best[name]:.2f}x"
            f" (/ parse + values: {base_values / best[name]:.2f}x)"
        )


if __name__ == "__main__":
    main()
