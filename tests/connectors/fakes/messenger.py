"""Fake Meta Graph API Send endpoint and webhook sender (Messenger Platform).

Webhook bodies are serialized the way Meta does (ASCII with ``\\uXXXX`` escapes, ``/`` as
``\\/``) and signed ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``.
Errors use the Graph error object
``{"error":{"message","type","code","error_subcode","fbtrace_id"}}``.
``fail_next`` scripts the answers to the next Send API calls: a key of ``GRAPH_ERRORS`` (the
documented Send API errors) or ``"html 502"`` (a proxy's non-JSON 502). ``calls`` holds the
``time.monotonic()`` of every Send API request received, failed ones included.

Files: the Send API takes an attachment uploaded with the message as multipart/form-data
(``recipient`` and ``message`` as JSON strings, the file in ``filedata``), up to 25 MB.
Files users send are served from ``/cdn/<name>`` (``cdn``), the URL a webhook names, or
from ``/r/<name>``, a 302 to the address ``redirects`` gives (Meta's attachment URLs
redirect to its CDN); the
User Profile API answers ``GET /<PSID>?fields=first_name,last_name,profile_pic``
(``profiles``). Webhook builders: attachments, quick replies, postbacks, ``message_edits``.
"""

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from tests.connectors.fakes.server import FakeServer

# (code, message, type, HTTP status, error_subcode) as the Send API answers them
# (https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes)
GRAPH_ERRORS: dict[str, tuple[int, str, str, int, int | None]] = {
    "1200 temporary": (
        1200,
        "(#1200) Temporary send message failure. Please try again later.",
        "OAuthException",
        400,
        2018024,
    ),
    "2 unexpected": (
        2,
        "An unexpected error has occurred. Please retry your request later.",
        "OAuthException",
        500,
        None,
    ),
    "613 rate limit": (
        613,
        "(#613) Calls to this API have exceeded the rate limit.",
        "OAuthException",
        400,
        None,
    ),
    "100 invalid parameter": (100, "(#100) No matching user found", "OAuthException", 400, 2018001),
    "551 unavailable": (
        551,
        "(#551) This person isn't available right now.",
        "OAuthException",
        400,
        1545041,
    ),
    "10 outside window": (
        10,
        "(#10) This message is sent outside of allowed window.",
        "OAuthException",
        400,
        2018278,
    ),
}


def meta_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=True).replace("/", "\\/").encode()


def meta_signature(app_secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


class FakeMessenger(FakeServer):
    def __init__(self, page_id: str, page_token: str, app_secret: str) -> None:
        self.page_id, self.page_token, self.app_secret = page_id, page_token, app_secret
        self.pages = {page_id: page_token}  # more pages of the same app: add_page
        self.sent: list[dict[str, Any]] = []
        self.sent_by_page: dict[str, list[dict[str, Any]]] = {}
        self.down = False  # answer 500 with code 2 "unexpected error, retry later"
        self.fail_next: list[str] = []
        self.calls: list[float] = []
        self._mid = 0
        self.cdn: dict[str, tuple[bytes, str]] = {}  # name -> (content, content type)
        self.redirects: dict[str, str] = {}  # name -> where /r/<name> redirects (Location)
        self.profiles: dict[str, dict[str, str]] = {}  # PSID -> first_name, last_name, pic name
        app = FastAPI()
        app.add_api_route("/{page_id}/messages", self._send, methods=["POST"])
        app.add_api_route("/cdn/{name}", self._cdn, methods=["GET"])
        app.add_api_route("/r/{name}", self._redirect, methods=["GET"])
        app.add_api_route("/{psid}", self._profile, methods=["GET"])
        super().__init__(app)

    def cdn_url(self, name: str) -> str:
        return f"{self.base_url}/cdn/{name}"

    def event(self, psid: str, **fields: Any) -> dict[str, Any]:
        """One messaging event (a postback, an edit, a message) in a page notification."""
        now = int(time.time() * 1000)
        messaging = {"sender": {"id": psid}, "recipient": {"id": self.page_id}, "timestamp": now}
        return {
            "object": "page",
            "entry": [{"id": self.page_id, "time": now, "messaging": [{**messaging, **fields}]}],
        }

    def attachment_notification(
        self, psid: str, kind: str, name: str, *, sticker_id: int | None = None
    ) -> dict[str, Any]:
        self._mid += 1
        payload: dict[str, Any] = {"url": self.cdn_url(name)}
        if sticker_id is not None:
            payload["sticker_id"] = sticker_id
        message = {
            "mid": f"m_{self._mid}_{time.time_ns()}",
            "attachments": [{"type": kind, "payload": payload}],
        }
        return self.event(psid, message=message)

    def quick_reply_notification(self, psid: str, title: str, payload: str) -> dict[str, Any]:
        self._mid += 1
        message = {"mid": f"m_{self._mid}", "text": title, "quick_reply": {"payload": payload}}
        return self.event(psid, message=message)

    def postback_notification(self, psid: str, title: str, payload: str) -> dict[str, Any]:
        self._mid += 1
        return self.event(
            psid, postback={"title": title, "payload": payload, "mid": f"m_pb_{self._mid}"}
        )

    def edit_notification(
        self, psid: str, mid: str, text: str, num_edit: int = 1
    ) -> dict[str, Any]:
        return self.event(psid, message_edit={"mid": mid, "text": text, "num_edit": num_edit})

    def redirect_url(self, name: str) -> str:
        return f"{self.base_url}/r/{name}"

    async def _redirect(self, name: str) -> Response:
        if name not in self.redirects:
            return Response(status_code=404)
        return Response(status_code=302, headers={"Location": self.redirects[name]})

    async def _cdn(self, name: str) -> Response:
        if name not in self.cdn:
            return Response(status_code=404)
        content, content_type = self.cdn[name]
        return Response(content, media_type=content_type)

    async def _profile(self, psid: str, request: Request) -> JSONResponse:
        if request.query_params.get("access_token") != self.page_token:
            return _error(190, "Invalid OAuth access token.", "OAuthException", status=400)
        profile = self.profiles.get(psid)
        if profile is None:
            return _error(
                100, "(#100) No profile available for this user.", "OAuthException", status=400
            )
        fields = request.query_params.get("fields", "").split(",")
        found = {"first_name": profile["first_name"], "last_name": profile["last_name"]}
        answer: dict[str, Any] = {k: v for k, v in found.items() if k in fields}
        if "profile_pic" in fields and profile.get("pic"):
            pic = profile["pic"]  # Meta's picture URLs redirect to its CDN too
            answer["profile_pic"] = (
                self.redirect_url(pic) if pic in self.redirects else self.cdn_url(pic)
            )
        return JSONResponse({**answer, "id": psid})

    def add_page(self, page_id: str, page_token: str) -> None:
        self.pages[page_id] = page_token

    def notification(
        self,
        psid: str,
        text: str,
        *,
        mid: str | None = None,
        echo: bool = False,
        page_id: str | None = None,
    ) -> dict[str, Any]:
        self._mid += 1
        message: dict[str, Any] = {"mid": mid or f"m_{self._mid}_{time.time_ns()}", "text": text}
        page = page_id or self.page_id
        sender, recipient = (page, psid) if echo else (psid, page)
        if echo:
            message.update(is_echo=True, app_id=1234)
        now = int(time.time() * 1000)
        return {
            "object": "page",
            "entry": [
                {
                    "id": page,
                    "time": now,
                    "messaging": [
                        {
                            "sender": {"id": sender},
                            "recipient": {"id": recipient},
                            "timestamp": now,
                            "message": message,
                        }
                    ],
                }
            ],
        }

    async def post_webhook(
        self, url: str, payload: dict[str, Any], *, secret: str | None = None
    ) -> httpx.Response:
        return await self.post_signed(url, meta_body(payload), secret=secret)

    async def post_signed(
        self, url: str, raw: bytes, *, secret: str | None = None
    ) -> httpx.Response:
        """These exact bytes, signed as Meta signs (any body: the signature is over the bytes)."""
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(secret or self.app_secret, raw),
        }
        async with httpx.AsyncClient() as client:
            return await client.post(url, content=raw, headers=headers)

    async def _send(self, page_id: str, request: Request) -> Response:
        self.calls.append(time.monotonic())
        if self.fail_next:
            scripted = self.fail_next.pop(0)
            if scripted == "html 502":
                return Response(
                    "<html><body>502 Bad Gateway</body></html>",
                    status_code=502,
                    media_type="text/html",
                )
            return _error(
                *GRAPH_ERRORS[scripted][:3],
                status=GRAPH_ERRORS[scripted][3],
                subcode=GRAPH_ERRORS[scripted][4],
            )
        if request.query_params.get("access_token") != self.pages.get(page_id):
            return _error(190, "Invalid OAuth access token.", "OAuthException", status=400)
        if self.down:
            return _error(
                2,
                "An unexpected error has occurred. Please retry your request later.",
                "OAuthException",
                status=500,
            )
        if "multipart/form-data" in request.headers.get("content-type", ""):
            body = await _upload_form(request)
            if isinstance(body, JSONResponse):
                return body
        else:
            body = await request.json()
        if body.get("messaging_type") not in {"RESPONSE", "UPDATE", "MESSAGE_TAG", None}:
            return _error(100, "(#100) Invalid messaging_type", "OAuthException", status=400)
        if body.get("messaging_type") == "MESSAGE_TAG" and body.get("tag") != "HUMAN_AGENT":
            return _error(
                10,
                "This message is sent outside of allowed window.",
                "OAuthException",
                status=400,
                subcode=2018278,
            )
        self.sent.append(body)
        self.sent_by_page.setdefault(page_id, []).append(body)
        self._mid += 1
        return JSONResponse(
            {"recipient_id": body["recipient"]["id"], "message_id": f"m_out_{self._mid}"}
        )


async def _upload_form(request: Request) -> dict[str, Any] | JSONResponse:
    form = await request.form()
    upload = form.get("filedata")
    try:
        body = {k: json.loads(str(form[k])) for k in ("recipient", "message")}
    except (KeyError, ValueError):
        return _error(100, "(#100) Invalid parameter", "OAuthException", status=400)
    if not isinstance(upload, UploadFile):
        return _error(100, "(#100) Upload attachment failure.", "OAuthException", status=400)
    content = await upload.read()
    if len(content) > 25 * 1024 * 1024:
        return _error(
            100, "(#100) Upload attachment failure.", "OAuthException", status=400, subcode=2018047
        )
    for key in ("messaging_type", "tag"):
        if key in form:
            body[key] = str(form[key])
    body["file"] = {
        "filename": upload.filename,
        "content_type": upload.content_type,
        "content": content,
    }
    return body


def _error(
    code: int, message: str, kind: str, *, status: int, subcode: int | None = None
) -> JSONResponse:
    error: dict[str, Any] = {
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": "AbCdEf123",
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    return JSONResponse({"error": error}, status_code=status)
