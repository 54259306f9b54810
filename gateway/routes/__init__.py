"""HTTP routers: each module's ``build_router(deps)`` returns its ``APIRouter``.

The app includes every one of them (``gateway/app.py``, ``ROUTER_BUILDERS``), imported
explicitly: a router that cannot be imported stops the gateway at start, it is never skipped.
"""
