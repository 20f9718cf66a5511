"""meterbridge.web: the read-only dashboard and JSON API over the store (see ARCHITECTURE.md).

``create_app(store, token=..., reports_dir=...)`` builds the Starlette app; ``build_server`` and ``serve``
run it with uvicorn (127.0.0.1:8450 by default; any other address needs a token).
"""

from meterbridge.web.app import create_app
from meterbridge.web.server import DEFAULT_HOST, DEFAULT_PORT, build_server, check_bind, serve

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "build_server", "check_bind", "create_app", "serve"]
