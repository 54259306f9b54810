"""HTTP routers. Each module listed exposes ``build_router(deps) -> APIRouter``.

Modules are imported when the app starts; a missing one is skipped with a log line so
features can land independently.
"""

ROUTER_MODULES: tuple[str, ...] = (
    "gateway.routes.auth",
    "gateway.routes.conversations",
    "gateway.routes.admin",
    "gateway.routes.signup",
    "gateway.routes.connectors",
    "gateway.routes.attachments",
    "gateway.routes.billing",
    "gateway.routes.audit",
    "gateway.routes.reports",
)
