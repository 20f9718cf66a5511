"""``meterbridge check --config``: an unreadable or invalid configuration is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import meterbridge.cli.check  # noqa: F401  (registers the command)
from meterbridge.cli.app import app


def _check(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["check", *args])
    return result.exit_code, result.output


def test_missing_config_is_one_line_exit_2(tmp_path: Path) -> None:
    code, out = _check("-c", str(tmp_path / "nonexistent.yaml"), "--reports", str(tmp_path / "r"))
    assert code == 2
    assert "Traceback" not in out
    lines = out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("meterbridge: refusing to start: ")
    assert "nonexistent.yaml" in lines[0]


def test_invalid_config_names_the_key_path(tmp_path: Path) -> None:
    cfg = tmp_path / "gw.yaml"
    cfg.write_text("meters:\n  - id: m1\n    protocol: nonsense\n", encoding="utf-8")
    code, out = _check("-c", str(cfg), "--reports", str(tmp_path / "r"))
    assert code == 2
    assert "Traceback" not in out
    assert out.startswith("meterbridge: refusing to start: ")
    assert "gw.yaml:3 meters[0].protocol" in out  # file:line and key path, as `meterbridge run` says it
