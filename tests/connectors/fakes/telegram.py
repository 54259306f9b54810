"""Fake Telegram Bot API (https://core.telegram.org/bots/api), at the HTTP layer.

Accepts JSON, form and query parameters on ``/bot<token>/<method>`` (methods case-insensitive),
answers ``{"ok":true,"result":..}`` or ``{"ok":false,"error_code":..,"description":..,
"parameters":{"retry_after":..}}``. getUpdates confirms every update below ``offset`` and long
polls up to ``timeout`` seconds, and returns only the update kinds ``allowed_updates`` names
(by default every kind but a few; the list is remembered across calls, as Telegram does);
while a webhook is set it answers 409 ("can't use getUpdates method while webhook is
active"). setWebhook takes an HTTPS ``url`` on port 443, 80, 88 or 8443 and a ``secret_token``
of 1-256 characters ``A-Z a-z 0-9 _ -``; an empty ``url`` removes the webhook, as deleteWebhook
does; getWebhookInfo reports it (never the secret). Several bots can be served at once
(``add_bot``): a user's private chat with each has the user's id.

Files ("Sending files"): sendPhoto / sendDocument / sendVideo / sendVoice / sendAudio /
sendAnimation take a new file only as multipart/form-data, 10 MB for photos and 50 MB for
the rest (413 beyond). getFile answers a ``File`` whose ``file_path`` downloads from
``/file/bot<token>/<file_path>``; files over 20 MB are refused ("file is too big").
``getUserProfilePhotos`` answers ``UserProfilePhotos``. ``sent`` records every successful
send in order with its ``method``; ``hold_files`` makes file sends wait for
``release_files()``.
"""

import asyncio
import itertools
import json
import random
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from tests.connectors.fakes.server import FakeServer

MB = 1024 * 1024
FILE_METHODS = {  # method → its file field
    "sendphoto": "photo",
    "senddocument": "document",
    "sendvideo": "video",
    "sendvoice": "voice",
    "sendaudio": "audio",
    "sendanimation": "animation",
}
# The update kinds sent when allowed_updates was never given (the Bot API's default list
# leaves out chat_member, message_reaction and message_reaction_count).
DEFAULT_UPDATES = {"message", "edited_message", "callback_query", "my_chat_member"}


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
        # (error_code, description) for the next sendMessage calls, e.g. (403, "Forbidden: bot
        # was blocked by the user"): refused as Telegram refuses one message, not the bot
        self.refuse_sends: list[tuple[int, str]] = []
        # group chat id -> the supergroup it was upgraded to: a sendMessage to the group is
        # refused with 400 and parameters.migrate_to_chat_id, as Telegram refuses it
        self.migrated: dict[int, int] = {}
        self.getupdates_calls = 0
        self.token_revoked = False  # answer 401 Unauthorized from now on
        self.other_poller = False  # getUpdates answers 409 as when a second bot instance polls
        self.cut_held = False  # held file sends fail when released (their sender died)
        self.files: dict[str, tuple[bytes, str]] = {}  # file_id -> (content, file_path)
        self.profile_photos: dict[int, list[str]] = {}  # user id -> file ids, newest first
        self.answered: list[dict[str, Any]] = []  # answerCallbackQuery calls
        self.allowed_updates: set[str] = set(DEFAULT_UPDATES)
        self.hold_files = (
            False  # file sends wait (received, not yet processed) until release_files()
        )
        self.held = 0  # file sends waiting now
        self._files_released = asyncio.Event()
        self._ids = itertools.count(1)
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
        app.add_api_route("/file/bot{token}/{path:path}", self._download, methods=["GET"])
        super().__init__(app)

    def add_file(self, content: bytes, path: str) -> str:
        """A file on Telegram's servers (what a user sent); returns its file_id."""
        file_id = f"AgAD{next(self._ids)}"
        self.files[file_id] = (content, path)
        return file_id

    def release_files(self) -> None:
        self.hold_files = False
        self._files_released.set()

    def _message(self, user_id: int, first_name: str = "Ann", **fields: Any) -> dict[str, Any]:
        return {
            "message_id": self.next_update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "from": {"id": user_id, "is_bot": False, "first_name": first_name},
            **fields,
        }

    def _next(self, **fields: Any) -> dict[str, Any]:
        update = {"update_id": self.next_update_id, **fields}
        self.next_update_id += 1
        return update

    def photo_update(
        self, user_id: int, file_id: str, caption: str | None = None
    ) -> dict[str, Any]:
        """A photo message: PhotoSize objects smallest first, the original last."""
        sizes = [
            {"file_id": f"{file_id}-thumb", "file_unique_id": "t", "width": 90, "height": 90},
            {"file_id": file_id, "file_unique_id": "o", "width": 1280, "height": 960},
        ]
        fields: dict[str, Any] = {"photo": sizes}
        if caption is not None:
            fields["caption"] = caption
        return self._next(message=self._message(user_id, **fields))

    def file_update(self, user_id: int, kind: str, file: dict[str, Any]) -> dict[str, Any]:
        """A document / voice / video / sticker message (``file`` is that object)."""
        return self._next(message=self._message(user_id, **{kind: file}))

    def edit_update(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        edited = self._message(user_id, text=text, edit_date=int(time.time()))
        edited["message_id"] = message_id
        return self._next(edited_message=edited)

    def migration_update(self, user_id: int, group: int, supergroup: int) -> dict[str, Any]:
        """The service message Telegram sends in a group upgraded to a supergroup (the
        supergroup gets one with ``migrate_from_chat_id``)."""
        message = self._message(user_id, migrate_to_chat_id=supergroup)
        message["chat"] = {"id": group, "type": "group", "title": "Customers"}
        return self._next(message=message)

    def callback_update(self, user_id: int, data: str) -> dict[str, Any]:
        query = {
            "id": f"cb{self.next_update_id}",
            "from": {"id": user_id, "is_bot": False, "first_name": "Ann"},
            "message": self._message(user_id, text="How would you rate this conversation?"),
            "chat_instance": "-1",
            "data": data,
        }
        return self._next(callback_query=query)

    def member_update(self, user_id: int, status: str) -> dict[str, Any]:
        """``kicked``: the user blocked the bot; ``member``: allowed it again."""
        user = {"id": user_id, "is_bot": False, "first_name": "Ann"}
        bot = {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "relaydesk"}
        change = {
            "chat": {"id": user_id, "type": "private", "first_name": "Ann"},
            "from": user,
            "date": int(time.time()),
            "old_chat_member": {
                "status": "member" if status == "kicked" else "kicked",
                "user": bot,
            },
            "new_chat_member": {"status": status, "user": bot},
        }
        return self._next(my_chat_member=change)

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
                if isinstance(value, UploadFile):
                    params[key] = value
                    continue
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
        if method.lower() in FILE_METHODS:
            return await self._send_file(method, FILE_METHODS[method.lower()], params)
        handler = {
            "sendmessage": self._send_message,
            "sendchataction": self._chat_action,
            "getupdates": self._get_updates,
            "getme": self._get_me,
            "getfile": self._get_file,
            "getuserprofilephotos": self._profile_photos,
            "answercallbackquery": self._answer_callback,
        }.get(method.lower())
        if handler is None:
            return _error(404, "Not Found")
        if handler == self._send_message:
            return await self._send_message(params, bot)
        return await handler(params)

    async def _send_file(self, method: str, field: str, params: dict[str, Any]) -> JSONResponse:
        upload = params.get(field)
        if not isinstance(upload, UploadFile):
            return _error(400, f"Bad Request: there is no {field} in the request")
        content = await upload.read()
        if len(content) > (10 * MB if field == "photo" else 50 * MB):
            return _error(413, "Request Entity Too Large")
        if self.hold_files:
            self.held += 1
            await self._files_released.wait()
            self.held -= 1
            if self.cut_held:
                return _error(502, "Bad Gateway")  # the request died with its sender
        self.sent.append(
            {
                "method": method,
                "chat_id": int(params["chat_id"]),
                "filename": upload.filename,
                "content_type": upload.content_type,
                "content": content,
            }
        )
        file = {"file_id": f"BQAD{len(self.sent)}", "file_size": len(content)}
        return self._sent_message(params, **{field: file})

    async def _get_file(self, params: dict[str, Any]) -> JSONResponse:
        found = self.files.get(str(params.get("file_id")))
        if found is None:
            return _error(400, "Bad Request: invalid file_id")
        content, path = found
        if len(content) > 20 * MB:
            return _error(400, "Bad Request: file is too big")
        file_id = str(params["file_id"])
        result = {"file_id": file_id, "file_unique_id": file_id, "file_size": len(content)}
        return JSONResponse({"ok": True, "result": {**result, "file_path": path}})

    async def _download(self, token: str, path: str) -> Response:
        if token not in self.tokens:
            return _error(401, "Unauthorized")
        for content, file_path in self.files.values():
            if file_path == path:
                return Response(content, media_type="application/octet-stream")
        return _error(404, "Not Found")

    async def _profile_photos(self, params: dict[str, Any]) -> JSONResponse:
        photos = [
            [{"file_id": file_id, "file_unique_id": file_id, "width": 640, "height": 640}]
            for file_id in self.profile_photos.get(int(params["user_id"]), [])
        ][: int(params.get("limit", 100))]
        return JSONResponse({"ok": True, "result": {"total_count": len(photos), "photos": photos}})

    async def _answer_callback(self, params: dict[str, Any]) -> JSONResponse:
        self.answered.append(params)
        return JSONResponse({"ok": True, "result": True})

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
        if self.refuse_sends:
            return _error(*self.refuse_sends.pop(0))
        if (moved := self.migrated.get(int(params["chat_id"]))) is not None:
            return _error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=moved,
            )
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
        sent = {"method": "sendMessage", "chat_id": int(params["chat_id"]), "text": text}
        if "message_thread_id" in params:
            sent["message_thread_id"] = int(params["message_thread_id"])
        if "reply_markup" in params:
            sent["reply_markup"] = params["reply_markup"]
        self.sent.append(sent)
        self.sent_by_bot.setdefault(bot, []).append(sent)
        if self.lose_answers and self._losses.random() < self.lose_answers:
            self.lost_answers += 1
            return _error(502, "Bad Gateway")
        return self._sent_message(params, text=text)

    def _sent_message(self, params: dict[str, Any], **content: Any) -> JSONResponse:
        """The ``Message`` a send method answers with."""
        chat = {"id": int(params["chat_id"]), "type": "private"}
        message = {"message_id": len(self.sent), "date": int(time.time()), "chat": chat}
        return JSONResponse({"ok": True, "result": {**message, **content}})

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
        if "allowed_updates" in params:
            self.allowed_updates = set(params["allowed_updates"]) or set(DEFAULT_UPDATES)
        timeout = float(params.get("timeout", 0))
        async with self._new_update:
            if not self.updates and timeout:
                try:
                    await asyncio.wait_for(self._new_update.wait(), timeout)
                except TimeoutError:
                    pass
        wanted = [u for u in self.updates if set(u) - {"update_id"} <= self.allowed_updates]
        return JSONResponse({"ok": True, "result": wanted[: int(params.get("limit", 100))]})

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


def _error(code: int, description: str, **parameters: int | None) -> JSONResponse:
    """Telegram's error answer; ``parameters`` (``retry_after``, ``migrate_to_chat_id``) as
    its ``ResponseParameters``."""
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    given = {k: v for k, v in parameters.items() if v is not None}
    if given:
        body["parameters"] = given
    return JSONResponse(body, status_code=code)
