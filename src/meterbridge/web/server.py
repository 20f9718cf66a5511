"""Serving the dashboard with uvicorn: loopback by default, a token required on any other address.

``build_server(app, host, port, token)`` returns a ``uvicorn.Server`` the gateway runs inside its own event
loop (``await server.serve()``; ``server.should_exit = True`` stops it). ``serve(store, ...)`` builds the
app and runs it until interrupted.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any, Final

import uvicorn
from starlette.applications import Starlette

from meterbridge.errors import ConfigError
from meterbridge.sinks.store import Store
from meterbridge.web.app import DEFAULT_REPORTS_DIR, create_app

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "build_server", "check_bind", "is_loopback", "serve"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8450


def is_loopback(host: str) -> bool:
    """True when ``host`` names only this machine (127.0.0.0/8, ::1, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the dashboard beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"web.host {host!r} is reachable from other machines: set web.token (at least 8 characters) "
            "or bind to 127.0.0.1",
            where="web.token",
        )


def build_server(
    app: Starlette,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    **config: Any,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``host:port`` (checked with ``check_bind``; pass the app's token).

    Extra keyword arguments go to ``uvicorn.Config`` (e.g. ``log_level``)."""
    check_bind(host, token)
    options: dict[str, Any] = {"log_level": "warning", "timeout_graceful_shutdown": 2, "lifespan": "off"}
    options.update(config)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))


def serve(
    store: Store,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    reports_dir: str | Path | None = DEFAULT_REPORTS_DIR,
    **app_options: Any,
) -> None:
    """Build the dashboard over ``store`` and serve it until interrupted (blocking)."""
    check_bind(host, token)
    app = create_app(store, token=token, reports_dir=reports_dir, **app_options)
    build_server(app, host, port, token=token).run()
