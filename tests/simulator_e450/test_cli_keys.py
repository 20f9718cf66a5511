"""Key options of ``simulate e450`` and ``listen``: one clear message, never the key itself."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from meterbridge.cli import _load_commands, app

_load_commands()
runner = CliRunner()


def _flat(output: str) -> str:
    """The error text without rich's box and line wrapping."""
    return re.sub(r"[│\s]+", " ", output)


GOOD = "000102030405060708090A0B0C0D0E0F"
SECRET_BAD = "zzSECRETzz"


@pytest.mark.parametrize("bad", [SECRET_BAD, "00112233", GOOD + "00"])
@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["simulate", "e450", "--wrapper-tcp", "127.0.0.1:0"], "--key"),
        (["simulate", "e450", "--wrapper-tcp", "127.0.0.1:0", "--key", GOOD], "--auth-key"),
        (["listen", "tcp:127.0.0.1:1"], "--key"),
        (["listen", "tcp:127.0.0.1:1", "--key", GOOD], "--auth-key"),
    ],
)
def test_bad_key_is_one_message_without_the_key(command: list[str], option: str, bad: str) -> None:
    result = runner.invoke(app, [*command, option, bad])
    assert result.exit_code == 2
    text = _flat(result.output)
    assert f"{option} must be 32 hex digits (16 bytes)" in text
    assert bad not in result.output and "fromhex" not in result.output
    assert "SECRET" not in result.output


@pytest.mark.parametrize("bad", [SECRET_BAD, f"{GOOD}:{SECRET_BAD}", f"{SECRET_BAD}:{GOOD}", f"{GOOD}:00"])
def test_bad_hls_keys_one_message_without_the_keys(bad: str) -> None:
    result = runner.invoke(app, ["simulate", "e450", "--wrapper-tcp", "127.0.0.1:0", "--hls", bad])
    assert result.exit_code == 2
    text = _flat(result.output)
    assert "--hls must be GUEK:GAK, two keys of 32 hex digits (16 bytes) each" in text
    assert "SECRET" not in result.output and GOOD not in result.output
