"""The dashboard: a read-only Starlette app over the store (pages, JSON API, live updates, metrics).

``create_app(store, ...)`` returns the app; the gateway's ``run`` and ``demo`` serve it (see
``meterbridge.web.server``). Pages are rendered on the server from the same dictionaries the JSON API
returns (``meterbridge.web.views``); the browser script only adds plots and live updates.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import meterbridge
from meterbridge.errors import ConfigError
from meterbridge.sinks.store import Store
from meterbridge.web import views
from meterbridge.web.metrics import StoreCollector, metrics_text
from meterbridge.web.openapi import openapi_document

__all__ = ["DEFAULT_REPORTS_DIR", "TOKEN_COOKIE", "create_app"]

TOKEN_COOKIE: Final = "meterbridge_token"
DEFAULT_REPORTS_DIR: Final = Path("var/reports")
_STATIC: Final = Path(__file__).parent / "static"
_OPEN_PATHS: Final = ("/healthz", "/static/")
_CSP: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_REPORT_CSP: Final = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


class TokenGuard:
    """ASGI middleware: with a token configured, every request but ``/healthz`` and the static assets must
    carry it as ``Authorization: Bearer``, ``?token=`` or the cookie this middleware sets after a good
    ``?token=`` (so that links and the browser's own requests keep working). Compared in constant time."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self._token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._token is None or scope["path"].startswith(_OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        via_query = False
        offered: list[bytes] = []
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                offered.append(value[7:].strip())
            elif name == b"cookie":
                cookie: SimpleCookie = SimpleCookie()
                try:
                    cookie.load(value.decode("latin-1"))
                except Exception:  # a malformed cookie header is just no cookie
                    continue
                if TOKEN_COOKIE in cookie:
                    offered.append(cookie[TOKEN_COOKIE].value.encode())
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query:
            offered.append(query["token"][0].encode())
            via_query = True
        ok = False
        for candidate in offered:
            ok |= hmac.compare_digest(candidate, self._token)
        if not ok:
            response = JSONResponse(
                {"error": "a token is required: Authorization: Bearer <token> or ?token=<token>"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="meterbridge"'},
            )
            await response(scope, receive, send)
            return
        if not via_query:
            await self.app(scope, receive, send)
            return
        token = self._token.decode()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append(
                    (
                        b"set-cookie",
                        f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1"),
                    )
                )
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class SecurityHeaders:
    """ASGI middleware adding CSP, nosniff and no-referrer (a ``?token=`` must not leak via Referer)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = (_REPORT_CSP if scope["path"].startswith("/reports/") else _CSP).encode()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {h[0].lower() for h in headers}
                for name, value in (
                    (b"content-security-policy", csp),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json_bytes(data), status_code=status, media_type="application/json")


def json_bytes(data: Any) -> bytes:
    """Compact JSON: orjson (a plot's thousands of floats in a tenth of the time ``json`` takes), the
    standard library for what orjson refuses (an integer beyond 64 bits); NaN and infinities become null."""
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def _error(exc: Exception) -> Response:
    status = 404 if isinstance(exc, views.NotFound) else 400
    message = exc.args[0] if exc.args else str(exc)
    return _json({"error": str(message)}, status)


Handler = Callable[[Request], Awaitable[Response]]


def _guarded(fn: Handler) -> Handler:
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except (views.BadRequest, views.NotFound) as exc:
            return _error(exc)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise views.BadRequest(f"{name} must be an integer, got {text!r}") from None


def _flag(request: Request, name: str) -> bool:
    text = (request.query_params.get(name) or "").lower()
    if text in ("", "0", "false", "no"):
        return False
    if text in ("1", "true", "yes"):
        return True
    raise views.BadRequest(f"{name} must be 1 or 0 (true or false), got {text!r}")


def create_app(
    store: Store,
    *,
    token: str | None = None,
    reports_dir: str | Path | None = DEFAULT_REPORTS_DIR,
    timezone: str = "UTC",
    stale_after: float = 900.0,
    live_interval: float = 1.0,
    registry: CollectorRegistry | None = None,
    title: str = "meterbridge",
) -> Starlette:
    """The dashboard over ``store`` (read only).

    ``token``: required on every request (Bearer header, ``?token=`` or the cookie set after it) when given;
    ``reports_dir``: where ``meterbridge check`` writes its reports (default ``var/reports``, the command's
    default too; None: no Reports page); ``timezone``: IANA zone of the energy
    day and month boundaries and of the pages' times; ``stale_after``: seconds without a reading after which
    a meter shows as stale; ``live_interval``: seconds between the live stream's looks at the store;
    ``registry``: the gateway's Prometheus registry, exposed on ``/metrics`` with the store's own figures.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"web timezone {timezone!r} is not a known IANA time zone", where="web.timezone"
        ) from None
    if token is not None and len(token) < 8:
        raise ConfigError("web token must be at least 8 characters", where="web.token")
    ctx = views.WebContext(
        store,
        token=token,
        reports_dir=Path(reports_dir) if reports_dir is not None else None,
        tz=zone,
        stale_after_s=stale_after,
        live_interval_s=live_interval,
    )
    env = Environment(
        loader=PackageLoader("meterbridge.web", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["iso"] = views._iso
    env.globals.update(title=title, version=meterbridge.__version__, tz=zone.key)
    scrape_registry = CollectorRegistry(auto_describe=True)
    scrape_registry.register(StoreCollector(store, ctx.history))

    def page(name: str, request: Request, status: int = 200, **data: Any) -> Response:
        html = env.get_template(name).render(path=request.url.path, **data)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8")

    def page_error(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, views.NotFound) else 400
        return page("error.html", request, status=status, message=str(exc.args[0] if exc.args else exc))

    # ------------------------------------------------------------ pages

    async def overview_page(request: Request) -> Response:
        meters = await run_in_threadpool(views.meter_summaries, ctx)
        return page("overview.html", request, meters=meters)

    async def meter_page(request: Request) -> Response:
        try:
            detail = await run_in_threadpool(views.meter_detail, ctx, request.path_params["meter_id"])
        except views.NotFound as exc:
            return page_error(request, exc)
        config = {"meter_id": detail["meter"]["id"], "tariffs": detail["tariffs"], "tz": zone.key}
        # JSON inside <script type="application/json">: "<" escaped so no value can close the element
        return page("meter.html", request, d=detail, config=json.dumps(config).replace("<", "\\u003c"))

    async def events_page(request: Request) -> Response:
        q = request.query_params
        try:
            data = await run_in_threadpool(
                views.events_view,
                ctx,
                q.get("meter"),
                q.get("kind"),
                q.get("start"),
                q.get("end"),
                q.get("active"),
                _int_param(request, "limit", 200),
            )
        except views.BadRequest as exc:
            return page_error(request, exc)
        return page("events.html", request, data=data, q=dict(q))

    async def bus_page(request: Request) -> Response:
        data = await run_in_threadpool(views.bus_view, ctx)
        return page("bus.html", request, data=data)

    async def reports_page(request: Request) -> Response:
        reports = await run_in_threadpool(views.report_files, ctx)
        return page("reports.html", request, reports=reports, configured=ctx.reports_dir is not None)

    async def report_file(request: Request) -> Response:
        try:
            path = views.report_path(ctx, request.path_params["name"])
        except views.NotFound as exc:
            return page_error(request, exc)
        media = "text/html; charset=utf-8" if path.suffix == ".html" else "application/json"
        return FileResponse(path, media_type=media)

    # ------------------------------------------------------------ JSON API

    @_guarded
    async def api_meters(request: Request) -> Response:
        return _json({"meters": await run_in_threadpool(views.meter_summaries, ctx)})

    @_guarded
    async def api_meter(request: Request) -> Response:
        return _json(await run_in_threadpool(views.meter_detail, ctx, request.path_params["meter_id"]))

    def _series(request: Request) -> tuple[Any, dict[str, Any]]:
        q = request.query_params
        start, end = views.resolve_range(q.get("start"), q.get("end"), q.get("range"))
        return views.series_view(
            ctx,
            request.path_params["meter_id"],
            q.get("key", ""),
            start,
            end,
            _int_param(request, "points", 1000),
            _flag(request, "flagged"),
        )

    @_guarded
    async def api_series(request: Request) -> Response:
        _, payload = await run_in_threadpool(_series, request)
        return _json(payload)

    @_guarded
    async def api_series_csv(request: Request) -> Response:
        series, _ = await run_in_threadpool(_series, request)
        text = views.series_csv(series)
        safe_key = "".join(c if c.isalnum() or c in "-." else "_" for c in series.key)
        filename = f"{series.meter_id}_{safe_key}_{series.start_ms}_{series.end_ms}.csv"
        filename = "".join(c if c.isalnum() or c in "-._" else "_" for c in filename)
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @_guarded
    async def api_energy(request: Request) -> Response:
        q = request.query_params
        data = await run_in_threadpool(
            views.energy_view,
            ctx,
            request.path_params["meter_id"],
            q.get("period", "day"),
            q.get("start"),
            q.get("end"),
            q.get("register", "1.8"),
            q.get("tz"),
            q.get("key") or None,
        )
        return _json(data)

    @_guarded
    async def api_events(request: Request) -> Response:
        q = request.query_params
        data = await run_in_threadpool(
            views.events_view,
            ctx,
            q.get("meter"),
            q.get("kind"),
            q.get("start"),
            q.get("end"),
            q.get("active"),
            _int_param(request, "limit", 200),
        )
        return _json(data)

    @_guarded
    async def api_bus(request: Request) -> Response:
        return _json(await run_in_threadpool(views.bus_view, ctx))

    @_guarded
    async def api_reports(request: Request) -> Response:
        return _json({"reports": await run_in_threadpool(views.report_files, ctx)})

    async def api_openapi(request: Request) -> Response:
        return _json(openapi_document(meterbridge.__version__))

    async def api_stream(request: Request) -> Response:
        return StreamingResponse(
            _live_events(request, ctx),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # ------------------------------------------------------------ monitoring

    async def healthz(request: Request) -> Response:
        started = time.perf_counter()
        try:
            depth = await run_in_threadpool(store.outbox_depth)
        except Exception as exc:  # the health answer reports the failure instead of raising
            return _json({"status": "error", "store": f"{type(exc).__name__}: {exc}"}, 503)
        return _json(
            {
                "status": "ok",
                "outbox_depth": depth,
                "store_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        )

    async def metrics(request: Request) -> Response:
        body, content_type = await run_in_threadpool(metrics_text, scrape_registry, registry)
        return Response(body, media_type=content_type)

    routes = [
        Route("/", overview_page),
        Route("/meters/{meter_id:str}", meter_page),
        Route("/events", events_page),
        Route("/bus", bus_page),
        Route("/reports", reports_page),
        Route("/reports/{name:str}", report_file),
        Route("/api/openapi.json", api_openapi),
        Route("/api/meters", api_meters),
        Route("/api/meters/{meter_id:str}", api_meter),
        Route("/api/meters/{meter_id:str}/series", api_series),
        Route("/api/meters/{meter_id:str}/series.csv", api_series_csv),
        Route("/api/meters/{meter_id:str}/energy", api_energy),
        Route("/api/events", api_events),
        Route("/api/bus", api_bus),
        Route("/api/reports", api_reports),
        Route("/api/stream", api_stream),
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.context = ctx
    app.add_middleware(TokenGuard, token=token)
    app.add_middleware(SecurityHeaders)
    return app


async def _live_events(request: Request, ctx: views.WebContext) -> AsyncIterator[bytes]:
    """The SSE stream: every meter's summary at once, then a summary whenever it changes; a comment line
    every 15 s keeps proxies from closing an idle stream."""
    sent: dict[str, str] = {}
    last_id = -1
    last_write = last_full = time.monotonic()
    yield b"retry: 3000\n\n"
    while not await request.is_disconnected():
        current = await run_in_threadpool(ctx.history.last_reading_id)
        # new readings, or time passing (a meter turning stale), change what the overview shows
        if current != last_id or time.monotonic() - last_full > 30:
            last_id = current
            last_full = time.monotonic()
            for summary in await run_in_threadpool(views.meter_summaries, ctx):
                text = json.dumps(summary, separators=(",", ":"), allow_nan=False)
                if sent.get(summary["id"]) != text:
                    sent[summary["id"]] = text
                    last_write = time.monotonic()
                    yield f"event: meter\ndata: {text}\n\n".encode()
        if time.monotonic() - last_write > 15:
            last_write = time.monotonic()
            yield b": keep-alive\n\n"
        await asyncio.sleep(ctx.live_interval_s)
