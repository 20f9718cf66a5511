"""``meterbridge decode FILE``: decode captured frames to JSON lines, for every protocol.

The command is a small framework around a registry of protocol decoders.

Registry contract
-----------------
A decoder lives in its own module ``meterbridge/cli/_decode_<name>.py``; this module finds
every such module with :mod:`pkgutil` (no edit here is needed to add one). The module
defines a module-level ``DECODER = Decoder(...)`` with:

``name``
    the value of ``--protocol`` that selects it (``mbus``, ``hdlc``, ``iec62056-21``, ``p1`` ...).
``detect(head: bytes) -> bool``
    whether the first bytes of the input (up to 64, after hex conversion) look like this
    protocol. ``--protocol auto`` (the default) picks the first decoder, in ``priority``
    order (lower first, then name), whose ``detect`` says yes.
``decode(chunks: Iterable[bytes], options: DecodeOptions) -> Iterator[dict[str, object]]``
    turns the input into JSON-able dicts, one per frame/telegram/readout, as a stream:
    ``chunks`` are consecutive pieces of one byte stream (one line of a hex file, or up to
    4 KiB of a binary file); a frame may span chunks. Values may be ``int``, ``Decimal``
    (printed as exact JSON numbers), ``float``, ``str``, ``bytes`` (printed as hex in frame
    order), ``datetime``/``date``/``time`` (ISO 8601), ``None``, lists and dicts of those.
    On bad input the decoder raises a ``meterbridge.errors.MeterbridgeError`` (normally a
    ``ProtocolError`` whose ``offset`` is the byte offset in the whole stream); the command
    prints it as one line on stderr and exits with code 2, after the objects already decoded.
``priority``
    optional, default 100.
``description``
    one line for ``--help``.

Options reach decoders in one :class:`DecodeOptions` object: ``key`` and ``auth_key``
(``--key`` / ``--auth-key``, hex, 16 bytes for AES-128; never printed), ``scalers``
(``--scaler OBIS=N``, repeatable: a mapping from the OBIS code text as given to the
power-of-ten exponent to apply where the frame carries no scaler) and ``pretty``.
A decoder ignores options it has no use for.

Input: FILE or ``-`` (stdin) holds raw bytes, or hex digits with any whitespace (a frame per
line or spread over lines), or a ``--log-frames`` capture (its ``rx`` lines: the bytes received;
``tx``, ``line`` and ``event`` lines are left out). Output: one JSON object per line (``--pretty``: indented).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from meterbridge.cli.app import app

__all__ = ["DecodeOptions", "Decoder", "decoders", "detect_protocol", "input_chunks", "to_json"]

HEAD_SIZE = 64
CHUNK_SIZE = 4096
_HEX_CHARS = frozenset(b"0123456789abcdefABCDEF \t\r\n\f\v")
# one line of a --log-frames capture: "<UTC time>Z <direction> <port> <hex bytes or note>"
_FRAME_LOG_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z (tx|rx|line|event) (\S+) ?(.*)$")


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """Options passed through to every decoder (keys are bytes, never printed)."""

    key: bytes | None = field(default=None, repr=False)
    auth_key: bytes | None = field(default=None, repr=False)
    scalers: dict[str, int] = field(default_factory=dict)
    pretty: bool = False


@dataclass(frozen=True, slots=True)
class Decoder:
    """One protocol decoder of the registry (see the module docstring)."""

    name: str
    detect: Callable[[bytes], bool]
    decode: Callable[[Iterable[bytes], DecodeOptions], Iterator[dict[str, object]]]
    description: str = ""
    priority: int = 100


def decoders() -> dict[str, Decoder]:
    """Every decoder found in ``meterbridge/cli/_decode_*.py``, in auto-detection order."""
    import meterbridge.cli as cli_package

    found: list[Decoder] = []
    for module in pkgutil.iter_modules(cli_package.__path__):
        if not module.name.startswith("_decode_"):
            continue
        loaded = importlib.import_module(f"meterbridge.cli.{module.name}")
        decoder = getattr(loaded, "DECODER", None)
        if isinstance(decoder, Decoder):
            found.append(decoder)
    found.sort(key=lambda d: (d.priority, d.name))
    return {d.name: d for d in found}


def detect_protocol(head: bytes, registry: dict[str, Decoder]) -> Decoder | None:
    for decoder in registry.values():
        if decoder.detect(head):
            return decoder
    return None


def _is_hex_text(head: bytes) -> bool:
    return bool(head.strip()) and all(b in _HEX_CHARS for b in head)


def input_chunks(stream: BinaryIO) -> tuple[bytes, Iterator[bytes]]:
    """``(head, chunks)``: the first bytes (for detection) and the whole input as byte chunks.

    Hex text is converted line by line (whitespace anywhere is ignored, an odd number of
    digits on a line continues on the next); raw input is passed in 4 KiB chunks.
    """
    first = stream.read(CHUNK_SIZE)
    if _FRAME_LOG_LINE.match(first.split(b"\n", 1)[0].rstrip(b"\r")):
        return _frame_log_chunks(first, stream)
    if _is_hex_text(first):
        return _hex_chunks(first, stream)

    def raw() -> Iterator[bytes]:
        if first:
            yield first
        while block := stream.read(CHUNK_SIZE):
            yield block

    return first[:HEAD_SIZE], raw()


def _hex_chunks(first: bytes, stream: BinaryIO) -> tuple[bytes, Iterator[bytes]]:
    text_lines = iter((first + stream.readline()).splitlines(keepends=False))
    carried = b""
    head_digits = b"".join(first.split())[: HEAD_SIZE * 2]
    head = bytes.fromhex(head_digits[: len(head_digits) // 2 * 2].decode("ascii"))
    line_number = 0

    def lines() -> Iterator[bytes]:
        yield from text_lines
        yield from stream

    def chunks() -> Iterator[bytes]:
        nonlocal carried, line_number
        for line in lines():
            line_number += 1
            digits = carried + b"".join(line.split())
            if any(b not in _HEX_CHARS for b in digits):
                raise typer.BadParameter(f"line {line_number}: not hex digits")
            even = len(digits) // 2 * 2
            carried = digits[even:]
            if even:
                yield bytes.fromhex(digits[:even].decode("ascii"))
        if carried:
            raise typer.BadParameter(f"line {line_number}: odd number of hex digits")

    return head, chunks()


def _frame_log_chunks(first: bytes, stream: BinaryIO) -> tuple[bytes, Iterator[bytes]]:
    """The received bytes of a ``--log-frames`` capture, one chunk per ``rx`` line."""
    text_lines = iter((first + stream.readline()).splitlines(keepends=False))

    def lines() -> Iterator[bytes]:
        yield from text_lines
        yield from stream

    def received() -> Iterator[bytes]:
        for number, raw_line in enumerate(lines(), start=1):
            line = raw_line.rstrip(b"\r\n")
            if not line.strip():
                continue
            match = _FRAME_LOG_LINE.match(line)
            if match is None:
                raise typer.BadParameter(
                    f"line {number}: not a --log-frames line (<UTC time>Z tx|rx|line|event <port> ...)"
                )
            if match.group(1) != b"rx":
                continue
            digits = b"".join(match.group(3).split())
            if len(digits) % 2 or any(b not in _HEX_CHARS for b in digits):
                raise typer.BadParameter(f"line {number}: rx bytes are not pairs of hex digits")
            if digits:
                yield bytes.fromhex(digits.decode("ascii"))

    chunks = received()
    taken: list[bytes] = []
    size = 0
    for chunk in chunks:
        taken.append(chunk)
        size += len(chunk)
        if size >= HEAD_SIZE:
            break

    def all_chunks() -> Iterator[bytes]:
        yield from taken
        yield from chunks

    return b"".join(taken)[:HEAD_SIZE], all_chunks()


def _default(obj: object) -> object:
    if isinstance(obj, (datetime, date, time)):
        return obj.isoformat()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex().upper()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not a JSON number")
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def to_json(obj: object, pretty: bool = False) -> str:
    """JSON text of a decoder's dict: Decimals as exact numbers, bytes hex, times ISO 8601."""
    marks: dict[str, str] = {}

    def prepare(value: object) -> object:
        if isinstance(value, Decimal):
            token = f"\x00dec{len(marks)}\x00"
            marks[token] = _decimal_text(value)
            return token
        if isinstance(value, dict):
            return {str(k): prepare(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [prepare(v) for v in value]
        return value

    text = json.dumps(prepare(obj), default=_default, ensure_ascii=False, indent=2 if pretty else None)
    for token, number in marks.items():
        text = text.replace(json.dumps(token), number, 1)
    return text


_REGISTRY_NAMES = ", ".join(decoders())


def _parse_scalers(values: list[str]) -> dict[str, int]:
    scalers: dict[str, int] = {}
    for item in values:
        obis, sep, exponent = item.partition("=")
        try:
            scalers[obis.strip()] = int(exponent)
        except ValueError:
            raise typer.BadParameter(f"--scaler wants OBIS=N (N an integer exponent), got {item!r}") from None
        if not sep or not obis.strip():
            raise typer.BadParameter(f"--scaler wants OBIS=N, got {item!r}")
    return scalers


def _parse_key(text: str | None, option: str) -> bytes | None:
    if text is None:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise typer.BadParameter(f"{option} must be hex digits") from None
    if len(key) != 16:
        raise typer.BadParameter(f"{option} must be 16 bytes (32 hex digits), got {len(key)} bytes")
    return key


@app.command()
def decode(
    file: Annotated[
        str,
        typer.Argument(
            help="File with captured frames (raw bytes, hex, or a --log-frames capture), or - for stdin."
        ),
    ],
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol", "-p", help=f"auto (detect from the first bytes) or one of: {_REGISTRY_NAMES}."
        ),
    ] = "auto",
    pretty: Annotated[bool, typer.Option("--pretty", help="Indent the JSON output.")] = False,
    key: Annotated[
        str | None, typer.Option("--key", help="Encryption key (hex, 16 bytes) for ciphered frames.")
    ] = None,
    auth_key: Annotated[
        str | None, typer.Option("--auth-key", help="Authentication key (hex, 16 bytes) to verify GCM tags.")
    ] = None,
    scaler: Annotated[
        list[str] | None,
        typer.Option(
            "--scaler",
            help="OBIS=N: apply 10**N to that register where the frame has no scaler (repeatable).",
        ),
    ] = None,
) -> None:
    """Decode captured frames (raw bytes, hex or a --log-frames capture; M-Bus, HDLC/DLMS, IEC 62056-21, P1) to JSON lines.

    Errors are printed as one line on stderr naming the byte offset; the exit code is then 2.
    """
    from meterbridge.errors import MeterbridgeError

    registry = decoders()
    options = DecodeOptions(
        key=_parse_key(key, "--key"),
        auth_key=_parse_key(auth_key, "--auth-key"),
        scalers=_parse_scalers(scaler or []),
        pretty=pretty,
    )
    if protocol != "auto" and protocol not in registry:
        raise typer.BadParameter(
            f"unknown protocol {protocol!r}; choose auto or one of: {', '.join(registry)}"
        )
    try:
        stream: BinaryIO = sys.stdin.buffer if file == "-" else Path(file).open("rb")  # noqa: SIM115
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    with stream:
        try:
            head, chunks = input_chunks(stream)
            if protocol == "auto":
                chosen = detect_protocol(head, registry)
                if chosen is None:
                    shown = head[:8].hex(" ").upper() or "(empty input)"
                    typer.echo(
                        f"error: no decoder recognises input starting with {shown}; use --protocol", err=True
                    )
                    raise typer.Exit(2)
            else:
                chosen = registry[protocol]
            out = sys.stdout
            for obj in chosen.decode(chunks, options):
                out.write(to_json(obj, pretty) + "\n")
        except MeterbridgeError as exc:
            sys.stdout.flush()
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except typer.BadParameter as exc:
            sys.stdout.flush()
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
