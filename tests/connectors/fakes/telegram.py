"""Fake Telegram Bot API (https://core.telegram.org/bots/api), at the HTTP layer.

Accepts JSON, form and query parameters on ``/bot<token>/<method>`` (methods case-insensitive),
answers ``{"ok":true,"result":..}`` or ``{"ok":false,"error_code":..,"description":..,
"parameters":{"retry_after":..}}``. getUpdates confirms every update below ``offset`` and long
polls up to ``timeout`` seconds; while a webhook is set it answers 409 ("can't use getUpdates
method while webhook is active"). setWebhook takes an HTTPS ``url`` on port 443, 80, 88 or
8443 and a ``secret_token`` of 1-256 characters ``A-Z a-z 0-9 _ -``; an empty ``url`` removes
the webhook, as deleteWebhook does; getWebhookInfo reports it (never the secret). Several bots
can be served at once (``add_bot``): a user's private chat with each has the user's id.
"""

import asyncio
import json
import random
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.connectors.fakes.server import FakeServer


class FakeTelegram(FakeServer):
    def __init__(self, token: str) -> None:
        self.token = token
        self.tokens = {token}
        self.sent: list[dict[str, Any]] = []
        self.sent_by_bot: dict[int, list[dict[str, Any]]] = {}  # bot id → its sendMessage calls
        self.webhooks: dict[int, dict[str, Any]] = {}  # bot id → setWebhook's parameters
        self.webhook_calls: list[tuple[int, str, dict[str, Any]]] = []  # (bot, method, params)
        self.actions: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.next_update_id = 100_000
        self.down = False  # answer 502 Bad Gateway
        self.rate_limited: list[int] = []  # retry_after values for the next sendMessage calls
        self.getupdates_calls = 0
        self.token_revoked = False  # answer 401 Unauthorized from now on
        self.other_poller = False  # getUpdates answers 409 as when a second bot instance polls
        # hold_send = n: the n-th sendMessage from now waits, unprocessed, until release()
        self.hold_send: int | None = None
        self.holding = False
        self._release = asyncio.Event()
        self._process_held = False
        # The share of sendMessage answers lost after Telegram processed the call (a proxy in
        # between answers 502 instead): the sender cannot tell it from a failed call.
        self.lose_answers = 0.0
        self.lost_answers = 0
        self._losses = random.Random(17)  # seeded: the same run every time
        self._new_update = asyncio.Condition()
        app = FastAPI()
        app.add_api_route("/bot{token}/{method}", self._handle, methods=["GET", "POST"])
        super().__init__(app)

    def api_base(self) -> str:
        return self.base_url

    def add_bot(self, token: str) -> None:
        self.tokens.add(token)

    def update(
        self,
        user_id: int,
        text: str,
        *,
        first_name: str = "Ann",
        group: int | None = None,
        topic: int | None = None,
    ) -> dict[str, Any]:
        """A text message from ``user_id``: in their private chat, or in the supergroup
        ``group`` (a negative chat id, as Telegram gives supergroups), in its forum ``topic``."""
        chat: dict[str, Any] = (
            {"id": user_id, "type": "private", "first_name": first_name}
            if group is None
            else {"id": group, "type": "supergroup", "title": "Customers"}
        )
        message: dict[str, Any] = {
            "message_id": self.next_update_id,
            "date": int(time.time()),
            "text": text,
            "chat": chat,
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
        }
        if topic is not None:
            message.update(message_thread_id=topic, is_topic_message=True)
            chat["is_forum"] = True
        update = {"update_id": self.next_update_id, "message": message}
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
        if token not in self.tokens or (self.token_revoked and token == self.token):
            return _error(401, "Unauthorized")
        if self.down:
            return _error(502, "Bad Gateway")
        params = await self._params(request)
        bot = int(token.split(":")[0])
        if method.lower() in {"setwebhook", "deletewebhook", "getwebhookinfo"}:
            self.webhook_calls.append((bot, method, params))
            return self._webhook(bot, method.lower(), params)
        if method.lower() == "getupdates" and bot in self.webhooks:
            return _error(
                409,
                "Conflict: can't use getUpdates method while webhook is active;"
                " use deleteWebhook to delete the webhook first",
            )
        handler = {
            "sendmessage": self._send_message,
            "sendchataction": self._chat_action,
            "getupdates": self._get_updates,
            "getme": self._get_me,
        }.get(method.lower())
        if handler is None:
            return _error(404, "Not Found")
        if handler == self._send_message:
            return await self._send_message(params, bot)
        return await handler(params)

    def _webhook(self, bot: int, method: str, params: dict[str, Any]) -> JSONResponse:
        if method == "getwebhookinfo":
            info = self.webhooks.get(bot, {})
            return JSONResponse(
                {
                    "ok": True,
                    "result": {
                        "url": info.get("url", ""),
                        "has_custom_certificate": False,
                        "pending_update_count": 0,
                        "allowed_updates": info.get("allowed_updates", []),
                    },
                }
            )
        url = str(params.get("url", "")) if method == "setwebhook" else ""
        if not url:
            self.webhooks.pop(bot, None)
            return JSONResponse({"ok": True, "result": True, "description": "Webhook was deleted"})
        parts = urlsplit(url)
        if parts.scheme != "https":
            return _error(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        if (parts.port or 443) not in {443, 80, 88, 8443}:
            return _error(
                400,
                "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
            )
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        self.webhooks[bot] = {
            "url": url,
            "secret_token": secret,
            "allowed_updates": params.get("allowed_updates", []),
        }
        return JSONResponse({"ok": True, "result": True, "description": "Webhook was set"})

    def release(self, *, process: bool) -> None:
        """Let the held sendMessage go on: processed (its answer then goes to whoever still
        listens) or dropped unprocessed (as when the request never reached Telegram)."""
        self._process_held = process
        self._release.set()

    async def _send_message(self, params: dict[str, Any], bot: int = 0) -> JSONResponse:
        if self.hold_send is not None:
            self.hold_send -= 1
            if self.hold_send == 0:
                self.hold_send, self.holding = None, True
                await self._release.wait()
                self.holding = False
                self._release.clear()
                if not self._process_held:
                    return _error(502, "Bad Gateway")
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
        sent = {"chat_id": int(params["chat_id"]), "text": text}
        if "message_thread_id" in params:
            sent["message_thread_id"] = int(params["message_thread_id"])
        self.sent.append(sent)
        self.sent_by_bot.setdefault(bot, []).append(self.sent[-1])
        if self.lose_answers and self._losses.random() < self.lose_answers:
            self.lost_answers += 1
            return _error(502, "Bad Gateway")
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
