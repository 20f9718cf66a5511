"""Helpers of the tests that run the gateway as a child process (test_crash.py, test_e2e.py)."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
from pathlib import Path


def refusing_socket() -> socket.socket:
    """A socket bound to a free port without listening: connections to it are refused, and no other
    process can bind the port while it is open."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def count_rows(path: Path, sql: str) -> int:
    """``sql``'s count in the store at ``path``, read-only; 0 while the file or its tables do not exist."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def log_tail(log: Path) -> str:
    """The end of a child's log, for an assertion message."""
    return log.read_bytes()[-3000:].decode(errors="replace") if log.exists() else ""


def stop_child(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (the gateway's clean stop), then SIGKILL when it has not ended within ``timeout`` s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
