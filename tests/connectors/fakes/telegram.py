"""Fake Telegram Bot API (https://core.telegram.org/bots/api), at the HTTP layer.

Accepts JSON, form and query parameters on ``/bot<token>/<method>`` (methods case-insensitive),
answers ``{"ok":true,"result":..}`` or ``{"ok":false,"error_code":..,"description":..,
"parameters":{"retry_after":..}}``. getUpdates confirms every update below ``offset`` and long
polls up to ``timeout`` seconds.
"""

import asyncio
import json
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.connectors.fakes.server import FakeServer


class FakeTelegram(FakeServer):
    def __init__(self, token: str) -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 100_000
        self.down = False  # answer 502 Bad Gateway
        self.rate_limited: list[int] = []  # retry_after values for the next sendMessage calls
        self.getupdates_calls = 0
        self.token_revoked = False  # answer 401 Unauthorized from now on
        self.other_poller = False  # getUpdates answers 409 as when a second bot instance polls
        self._new_update = asyncio.Condition()
        app = FastAPI()
        app.add_api_route("/bot{token}/{method}", self._handle, methods=["GET", "POST"])
        super().__init__(app)

    def api_base(self) -> str:
        return self.base_url

    def update(self, user_id: int, text: str, *, first_name: str = "Ann") -> dict[str, Any]:
        update = {
            "update_id": self.next_update_id,
            "message": {
                "message_id": self.next_update_id,
                "date": int(time.time()),
                "text": text,
                "chat": {"id": user_id, "type": "private", "first_name": first_name},
                "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            },
        }
        self.next_update_id += 1
        return update

    async def queue_update(self, update: dict[str, Any]) -> None:
        async with self._new_update:
            self.updates.append(update)
            self._new_update.notify_all()

    async def post_webhook(
        self, url: str, update: dict[str, Any], secret: str | None
    ) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        async with httpx.AsyncClient() as client:
            return await client.post(url, json=update, headers=headers)

    async def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params)
        content_type = request.headers.get("content-type", "")
        if "json" in content_type:
            params.update(await request.json())
        elif "form" in content_type:
            for key, value in (await request.form()).items():
                try:
                    params[key] = json.loads(str(value)) if str(value)[:1] in "[{" else value
                except ValueError:
                    params[key] = value
        return params

    async def _handle(self, token: str, method: str, request: Request) -> JSONResponse:
        if token != self.token or self.token_revoked:
            return _error(401, "Unauthorized")
        if self.down:
            return _error(502, "Bad Gateway")
        params = await self._params(request)
        handler = {
            "sendmessage": self._send_message,
            "sendchataction": self._chat_action,
            "getupdates": self._get_updates,
            "deletewebhook": self._ok_true,
            "getme": self._get_me,
        }.get(method.lower())
        if handler is None:
            return _error(404, "Not Found")
        return await handler(params)

    async def _send_message(self, params: dict[str, Any]) -> JSONResponse:
        if self.rate_limited:
            retry_after = self.rate_limited.pop(0)
            return _error(
                429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after
            )
        text = params.get("text")
        if not isinstance(text, str) or not text:
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        self.sent.append({"chat_id": int(params["chat_id"]), "text": text})
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    "message_id": len(self.sent),
                    "date": int(time.time()),
                    "chat": {"id": int(params["chat_id"]), "type": "private"},
                    "text": text,
                },
            }
        )

    async def _chat_action(self, params: dict[str, Any]) -> JSONResponse:
        self.actions.append({"chat_id": int(params["chat_id"]), "action": params.get("action")})
        return JSONResponse({"ok": True, "result": True})

    async def _get_updates(self, params: dict[str, Any]) -> JSONResponse:
        self.getupdates_calls += 1
        if self.other_poller:
            return _error(
                409,
                "Conflict: terminated by other getUpdates request;"
                " make sure that only one bot instance is running",
            )
        offset = int(params.get("offset", 0))
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]  # confirmed
        timeout = float(params.get("timeout", 0))
        async with self._new_update:
            if not self.updates and timeout:
                try:
                    await asyncio.wait_for(self._new_update.wait(), timeout)
                except TimeoutError:
                    pass
        return JSONResponse(
            {"ok": True, "result": list(self.updates[: int(params.get("limit", 100))])}
        )

    async def _ok_true(self, _: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"ok": True, "result": True})

    async def _get_me(self, _: dict[str, Any]) -> JSONResponse:
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    "id": int(self.token.split(":")[0]),
                    "is_bot": True,
                    "first_name": "relaydesk",
                },
            }
        )


def _error(code: int, description: str, *, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=code)
