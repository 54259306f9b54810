"""The gateway application: HTTP API, websocket endpoint, static web assets."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import orjson
import structlog
from fastapi import APIRouter, FastAPI, HTTPException, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic_core import PydanticSerializationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.access_log import AccessLogMiddleware
from gateway.auth.http import get_deps
from gateway.body_limits import BodyLimitMiddleware
from gateway.deps import GatewayDeps
from gateway.public_health import CachedReadiness, may_see_details, ready_answer
from gateway.routes import (
    admin,
    attachments,
    audit,
    auth,
    billing,
    connectors,
    conversations,
    reports,
    signup,
)
from gateway.security_headers import SecurityHeadersMiddleware
from gateway.ws import websocket_endpoint
from relaydesk.settings import Settings
from relaydesk.store import TRANSIENT

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"/demo": "demo.html", "/console": "console.html", "/admin": "admin.html"}

# Every HTTP router, in the order they are included.
ROUTER_BUILDERS: tuple[Callable[[GatewayDeps], APIRouter], ...] = (
    auth.build_router,
    conversations.build_router,
    admin.build_router,
    signup.build_router,
    connectors.build_router,
    attachments.build_router,
    billing.build_router,
    audit.build_router,
    reports.build_router,
)


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps = await GatewayDeps.start(settings)
        app.state.deps = deps
        app.state.readiness = CachedReadiness(deps.readiness)
        _include_routers(app, deps)
        yield
        await deps.stop()

    app = FastAPI(title="relaydesk gateway", version="1", lifespan=lifespan)
    # Innermost first: bodies are limited before any route reads them (gateway/body_limits.py);
    # CORS and the security headers then apply to every answer, refusals included.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    # The widget runs on customers' sites and calls the API cross-origin. Credentials are
    # bearer tokens in headers, never cookies, so a wildcard origin grants nothing ambient;
    # websockets are checked against the tenant's allowed sites separately (gateway/origins.py).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_credentials=False,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"],
        expose_headers=["X-Request-Id"],  # the request's correlation id (gateway/access_log.py)
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    # Outermost: one access line per request, whoever answered it (gateway/access_log.py).
    app.add_middleware(AccessLogMiddleware)
    _install_error_handlers(app)

    @app.get("/healthz")
    async def healthz(request: Request) -> dict[str, object]:
        """Alive: the process answers (gateway/public_health.py); the details only for
        loopback clients or with ``RELAYDESK_HEALTH_TOKEN``."""
        deps = get_deps(request)
        if not may_see_details(request, settings):
            return {"status": "alive"}
        return {"status": "alive", "sockets": len(deps.sessions), "log_position": deps.tailer.head}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """Ready: 200 when broker, store, log reader and routing all answer, else 503."""
        return await ready_answer(request, settings, request.app.state.readiness)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        deps: GatewayDeps = websocket.app.state.deps
        await websocket_endpoint(websocket, deps)

    for path, page in PAGES.items():
        app.add_api_route(path, _page(page), methods=["GET"], include_in_schema=False)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _page(name: str) -> Callable[[], Awaitable[FileResponse]]:
    async def serve() -> FileResponse:
        path = STATIC_DIR / name
        if not path.exists():
            raise HTTPException(
                404, detail={"code": "not_found", "message": f"{name} is not installed"}
            )
        return FileResponse(path, media_type="text/html")

    return serve


def _include_routers(app: FastAPI, deps: GatewayDeps) -> None:
    for build_router in ROUTER_BUILDERS:
        app.include_router(build_router(deps))
    app.openapi_schema = None  # routers arrive in the lifespan: rebuild the schema lazily


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answers ``{"error": {"code", "message"}}`` (docs/protocol.md), whoever
    raised it: our routes, FastAPI's body parsing (e.g. JSON nested too deep), Starlette's
    routing (404, 405), or a bug (500)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = (
            exc.detail
            if isinstance(exc.detail, dict)
            else {"code": _code_for(exc.status_code), "message": str(exc.detail)}
        )
        return JSONResponse(
            {"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    async def unencodable(request: Request, exc: Exception) -> JSONResponse:
        # JSON with lone surrogates parses in Python but cannot be put on the log: refused
        # before anything is published, so nothing is half-applied. Envelopes are written by
        # pydantic-core (relaydesk/bus/codec.py), other bodies by orjson.
        if "surrogates not allowed" not in str(exc):
            raise exc  # another failure to serialise is ours: the 500 handler's
        return JSONResponse(
            {
                "error": {
                    "code": "invalid_payload",
                    "message": "text must be valid Unicode (no lone surrogates)",
                }
            },
            status_code=400,
        )

    app.add_exception_handler(orjson.JSONEncodeError, unencodable)
    app.add_exception_handler(PydanticSerializationError, unencodable)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": []}
        message = f"{first.get('msg')} at {'.'.join(str(p) for p in first.get('loc', []))}"
        return JSONResponse(
            {"error": {"code": "invalid_payload", "message": message}}, status_code=400
        )

    async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # The store down, restarting, or a connection of it cut: unavailable, like any other
        # dependency that does not answer (ask again), not a bug's 500.
        route = getattr(request.scope.get("route"), "path", "unmatched")
        log.warning("store_unavailable", route=route, error=type(exc).__name__)
        return JSONResponse(
            {"error": {"code": "unavailable", "message": "the database did not answer; retry"}},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    for transient in TRANSIENT:
        app.add_exception_handler(transient, store_unavailable)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # The route's template, never the path: ids stay out of logs (docs/observability.md).
        route = getattr(request.scope.get("route"), "path", "unmatched")
        log.exception("http_request_failed", route=route)
        return JSONResponse(
            {"error": {"code": "internal", "message": "internal error"}}, status_code=500
        )


def _code_for(status: int) -> str:
    return {
        400: "invalid_payload",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        408: "timeout",
        409: "conflict",
        413: "too_large",
        429: "rate_limited",
    }.get(status, "error")
