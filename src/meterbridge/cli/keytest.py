"""``meterbridge keytest FILE --key HEX [--auth-key HEX]``: does this key open this captured push, and if not, why."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from meterbridge.cli.app import app

__all__ = ["diagnose", "keytest"]


def _hex_key(text: str | None, what: str) -> tuple[bytes | None, str | None]:
    if text is None:
        return None, None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        return None, f"the {what} is not hex digits"
    if len(key) != 16:
        return None, (
            f"the {what} is {len(key)} bytes ({len(text.replace(' ', ''))} hex digits); "
            "security suite 0 needs 16 bytes (32 hex digits)"
        )
    return key, None


def diagnose(data: bytes, key_text: str, auth_key_text: str | None) -> tuple[bool, list[str]]:
    """Check the keys against the first ciphered push in ``data`` (raw bytes); answer (opens?, lines)."""
    from meterbridge.errors import AuthenticationError, ProtocolError
    from meterbridge.protocols.dlms.apdu import DataNotification, GeneralGloCiphering, decode_apdu
    from meterbridge.protocols.dlms.push import PushError, PushFramer
    from meterbridge.protocols.dlms.security import SecurityKeys, decrypt
    from meterbridge.protocols.events import NEED_DATA

    lines: list[str] = []
    key, problem = _hex_key(key_text, "encryption key (--key)")
    auth_key, auth_problem = _hex_key(auth_key_text, "authentication key (--auth-key)")
    if problem or auth_problem:
        return False, [f"Key length: {p}." for p in (problem, auth_problem) if p]

    framer = PushFramer()
    framer.receive_data(data)
    ciphered: GeneralGloCiphering | None = None
    plain_seen = 0
    framing_errors: list[str] = []
    while (found := framer.next_event()) is not NEED_DATA:
        if isinstance(found, PushError):
            framing_errors.append(str(found.error))
            continue
        assert isinstance(found, bytes)
        try:
            apdu = decode_apdu(found)
        except ProtocolError as exc:
            framing_errors.append(str(exc))
            continue
        if isinstance(apdu, GeneralGloCiphering):
            ciphered = apdu
            break
        if isinstance(apdu, DataNotification):
            plain_seen += 1
    envelope = {"hdlc": "HDLC frames", "mbus": "M-Bus long frames"}.get(framer.framing, "no known framing")
    if ciphered is None:
        if framing_errors:
            lines.append(
                f"Framing: the capture does not hold a complete push ({envelope}): {framing_errors[0]}."
            )
        elif plain_seen:
            lines.append(f"Framing: {envelope} are fine, but the push is not encrypted: no key is needed.")
        else:
            lines.append(f"Framing: no push found in the capture ({envelope}).")
        return False, lines
    lines.append(f"Framing: {envelope}, complete push found (general-glo-ciphering).")
    title = ciphered.system_title
    if len(title) != 8:
        lines.append(f"System title: {len(title)} bytes where 8 are expected; the frame is damaged.")
        return False, lines
    maker = title[:3].decode("ascii", "replace")
    shown = (
        f"{maker} {title[3:].hex().upper()}" if maker.isalpha() and maker.isupper() else title.hex().upper()
    )
    lines.append(f"System title: {shown} (the meter's; it is part of the IV).")
    if len(ciphered.ciphered) < 5:
        lines.append("Security control: missing (the ciphered part is shorter than its 5-byte header).")
        return False, lines
    sc = ciphered.ciphered[0]
    counter = int.from_bytes(ciphered.ciphered[1:5], "big")
    meaning = {
        0x30: "authenticated and encrypted",
        0x20: "encrypted, no tag",
        0x10: "authenticated only (not encrypted)",
        0x00: "neither",
    }
    if sc & 0x8F or sc & 0x30 not in meaning:
        lines.append(
            f"Security control: 0x{sc:02X} asks for security suite {sc & 0x0F}"
            f"{' with compression' if sc & 0x80 else ''}; only suite 0 is implemented."
        )
        return False, lines
    lines.append(
        f"Security control: 0x{sc:02X} ({meaning[sc & 0x30]}{', broadcast key' if sc & 0x40 else ''}), "
        f"invocation counter {counter}."
    )
    if sc & 0x10 and auth_key is None:
        lines.append("Tag: the frame has one, but without --auth-key it cannot be checked.")
    try:
        opened = decrypt(ciphered.ciphered, system_title=title, keys=SecurityKeys(key, auth_key))
    except AuthenticationError:
        # which key is wrong? decrypt with the encryption key alone and look for a valid APDU
        alone = decrypt(ciphered.ciphered, system_title=title, keys=SecurityKeys(key))
        if _is_apdu(alone.plaintext):
            lines.append(
                "Tag: does NOT verify. The encryption key is right (it decrypts to a valid APDU), "
                "so the authentication key (--auth-key) is wrong."
            )
        else:
            lines.append(
                "Tag: does NOT verify, and the encryption key alone decrypts to no valid APDU: "
                "the encryption key (--key) is wrong (the authentication key may be wrong too)."
            )
        return False, lines
    except ProtocolError as exc:
        lines.append(f"Decryption: {exc.message}.")
        return False, lines
    if not _is_apdu(opened.plaintext):
        lines.append(
            "Decryption: gives no valid APDU: the encryption key (--key) is wrong"
            + (" (there is no tag to tell for sure)." if not sc & 0x10 else ".")
        )
        return False, lines
    if opened.authenticated:
        lines.append("Result: both keys are right. The tag verifies and the payload is a valid APDU.")
    else:
        lines.append(
            "Result: the encryption key opens the frame (it decrypts to a valid APDU); "
            "the data is not authenticated" + (" (give --auth-key to check the tag)." if sc & 0x10 else ".")
        )
    return True, lines


def _is_apdu(plaintext: bytes) -> bool:
    from meterbridge.errors import ProtocolError
    from meterbridge.protocols.dlms.apdu import decode_apdu

    try:
        decode_apdu(plaintext)
    except ProtocolError:
        return False
    return True


@app.command()
def keytest(
    file: Annotated[
        str, typer.Argument(help="Captured push (raw bytes, hex, or a --log-frames capture), or - for stdin.")
    ],
    key: Annotated[str, typer.Option("--key", help="Encryption key (GUEK), 32 hex digits.")],
    auth_key: Annotated[
        str | None, typer.Option("--auth-key", help="Authentication key (GAK), 32 hex digits.")
    ] = None,
) -> None:
    """Tell in words whether a key opens a captured DLMS push (HDLC or M-Bus framed), and if not, which
    part is wrong: framing, system title, security control, key length, tag (with --auth-key) or the
    decryption giving no valid APDU (with --key alone). Exit code 0: the key opens it; 1: it does not."""
    from meterbridge.cli.decode import input_chunks

    try:
        stream = sys.stdin.buffer if file == "-" else Path(file).open("rb")  # noqa: SIM115
    except OSError as exc:
        typer.echo(f"error: cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    with stream:
        try:
            _, chunks = input_chunks(stream)
            data = b"".join(chunks)
        except typer.BadParameter as exc:
            typer.echo(f"error: {exc.message}", err=True)
            raise typer.Exit(2) from None
    ok, lines = diagnose(data, key, auth_key)
    for line in lines:
        typer.echo(line)
    raise typer.Exit(0 if ok else 1)
