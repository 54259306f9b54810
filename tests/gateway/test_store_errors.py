"""A store that does not answer is 503 unavailable in the documented error shape, not a 500.

Found using it: the first sign-in after five quiet minutes answered 500 (the embedded store
had closed the pooled connection; relaydesk/store.py now drops idle ones first). Whatever
cuts the store off (a restart, a network cut), a request that needed it is told to retry.
"""

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError

from gateway.app import _install_error_handlers


@pytest.mark.parametrize(
    "error", [AutoReconnect("connection closed"), ServerSelectionTimeoutError()]
)
async def test_a_store_that_does_not_answer_is_unavailable_not_internal(error: Exception) -> None:
    app = FastAPI()
    _install_error_handlers(app)

    @app.post("/api/auth/login")
    async def login() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        answer = await http.post("/api/auth/login")
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1"
    assert answer.json() == {
        "error": {"code": "unavailable", "message": "the database did not answer; retry"}
    }
