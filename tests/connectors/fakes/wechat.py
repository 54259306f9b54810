"""Fake WeChat Official Account API and push sender.

API: ``POST /cgi-bin/stable_token`` (getStableAccessToken) → ``{"access_token","expires_in"}``:
the normal mode returns the current token while it is valid (a new one once it expired); the
forced mode (``force_refresh``) invalidates it and issues another, at most 20 times a day and
30 s apart (45009 / 45011 beyond); a wrong AppID or AppSecret gets 40013 / 40125.
``POST /cgi-bin/message/custom/send?access_token=`` → ``{"errcode":0,"errmsg":"ok"}``, or 42001
for an expired token, 40001 for one that is invalid or not the latest, 45002 for text over
2048 bytes, 45009 once the daily quota (``daily_quota``) is used up. Pushes are signed
``sha1(sorted(token, timestamp, nonce))``; safe mode adds ``encrypt_type=aes`` and
``msg_signature`` over the encrypted body.

Media: ``POST /cgi-bin/media/upload?access_token=&type=`` (multipart ``media``; image 10 MB
PNG/JPEG/GIF, voice 2 MB AMR/MP3) → ``{"type","media_id","created_at"}`` or 40004 / 40005 /
40006; a custom ``image`` / ``voice`` message must name an uploaded media_id (else 40007).
``GET /cgi-bin/media/get?media_id=`` answers the file a user sent (``media``), or 40007.
``GET /cgi-bin/user/info?openid=`` answers the user (``users``), ``headimgurl`` served from
``/headimg/<name>``.
"""

import secrets
import time
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from connectors.wechat_crypto import WeChatCipher, signature
from tests.connectors.fakes.server import FakeServer

MB = 1024 * 1024
UPLOADS = {  # media type → (accepted content types, size limit)
    "image": ({"image/png", "image/jpeg", "image/gif"}, 10 * MB),
    "voice": ({"audio/amr", "audio/mpeg"}, 2 * MB),
}


def media_xml(to: str, openid: str, kind: str, media_id: str, msg_id: int) -> str:
    """An image / voice / video push (``PicUrl`` for images, ``Format`` for voice)."""
    extra = {
        "image": f"<PicUrl><![CDATA[http://mmbiz.qpic.cn/{media_id}]]></PicUrl>",
        "voice": "<Format><![CDATA[amr]]></Format>",
        "video": "<ThumbMediaId><![CDATA[thumb1]]></ThumbMediaId>",
    }[kind]
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
        f"<MediaId><![CDATA[{media_id}]]></MediaId>{extra}<MsgId>{msg_id}</MsgId></xml>"
    )


def event_xml(to: str, openid: str, event: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    )


def text_xml(to: str, openid: str, content: str, msg_id: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )


class FakeWeChat(FakeServer):
    def __init__(self, app_id: str, app_secret: str, token: str, aes_key: str) -> None:
        self.app_id, self.app_secret, self.token, self.aes_key = app_id, app_secret, token, aes_key
        self.sent: list[dict[str, Any]] = []
        self.typing: list[dict[str, Any]] = []
        self.valid_tokens: set[str] = set()
        self.expired_tokens: set[str] = set()
        self.token_fetches = 0
        self.uploads: dict[str, dict[str, Any]] = {}  # media_id -> what was uploaded
        self.media: dict[str, tuple[bytes, str]] = {}  # media a user sent: id -> (bytes, type)
        self.users: dict[str, dict[str, str]] = {}  # openid -> nickname, headimg (name)
        self.headimgs: dict[str, bytes] = {}
        self.forced_refreshes: list[float] = []  # time.monotonic() of each granted one
        self.forced_refused = 0
        self.daily_quota: int | None = None  # custom/send calls left today; None: unlimited
        self.send_calls = 0
        self._current: str | None = None
        app = FastAPI()
        app.add_api_route("/cgi-bin/media/upload", self._upload, methods=["POST"])
        app.add_api_route("/cgi-bin/media/get", self._media_get, methods=["GET"])
        app.add_api_route("/cgi-bin/user/info", self._user_info, methods=["GET"])
        app.add_api_route("/headimg/{name}", self._headimg, methods=["GET"])
        app.add_api_route("/cgi-bin/stable_token", self._stable_token, methods=["POST"])
        app.add_api_route("/cgi-bin/message/custom/send", self._custom_send, methods=["POST"])
        app.add_api_route("/cgi-bin/message/custom/typing", self._typing, methods=["POST"])
        super().__init__(app)

    def expire_tokens(self) -> None:
        self.expired_tokens |= self.valid_tokens
        self.valid_tokens.clear()
        self._current = None

    def refresh_elsewhere(self) -> None:
        """Another client of the same app forced a refresh: our token is no longer the latest."""
        self.valid_tokens.clear()
        self._current = None

    async def push(
        self,
        url: str,
        xml: str,
        *,
        safe: bool = True,
        token: str | None = None,
        cut_envelope: bool = False,
        encrypted: str | None = None,
    ) -> httpx.Response:
        """``cut_envelope``: the safe-mode envelope loses its closing tags, every signature right;
        ``encrypted``: this ``Encrypt`` value instead of ``xml`` encrypted (signed all the same)."""
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        params = {
            "signature": signature(token or self.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": "x",
        }
        body = xml
        if safe:
            encrypted = (
                encrypted
                if encrypted is not None
                else WeChatCipher(self.aes_key, self.app_id).encrypt(xml)
            )
            params.update(
                encrypt_type="aes",
                msg_signature=signature(token or self.token, timestamp, nonce, encrypted),
            )
            body = (
                "<xml><ToUserName><![CDATA[gh_fake]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            )
            if cut_envelope:
                body = body.removesuffix("]]></Encrypt></xml>")
        async with httpx.AsyncClient(timeout=5.0) as client:  # WeChat gives up after 5 s
            return await client.post(
                url, params=params, content=body.encode(), headers={"Content-Type": "text/xml"}
            )

    async def _stable_token(self, request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("appid") != self.app_id:
            return JSONResponse({"errcode": 40013, "errmsg": "invalid appid"})
        if body.get("secret") != self.app_secret:
            return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
        self.token_fetches += 1
        if body.get("force_refresh") is True:
            now = time.monotonic()
            if self.forced_refreshes and now - self.forced_refreshes[-1] < 30:
                self.forced_refused += 1
                return JSONResponse({"errcode": 45011, "errmsg": "api minute-quota reach limit"})
            if len(self.forced_refreshes) >= 20:
                self.forced_refused += 1
                return JSONResponse({"errcode": 45009, "errmsg": "reach max api daily quota limit"})
            self.forced_refreshes.append(now)
            self.valid_tokens.clear()
            self._current = None
        if self._current is None or self._current not in self.valid_tokens:
            self._current = secrets.token_urlsafe(24)
            self.valid_tokens.add(self._current)
        return JSONResponse({"access_token": self._current, "expires_in": 7200})

    def _token_error(self, request: Request) -> JSONResponse | None:
        token = request.query_params.get("access_token", "")
        if token in self.expired_tokens:
            return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
        if token not in self.valid_tokens:
            return JSONResponse(
                {
                    "errcode": 40001,
                    "errmsg": "invalid credential, access_token is invalid or not latest",
                }
            )
        return None

    async def _custom_send(self, request: Request) -> JSONResponse:
        self.send_calls += 1
        if (error := self._token_error(request)) is not None:
            return error
        body = await request.json()
        kind = body.get("msgtype")
        if kind in UPLOADS and (body.get(kind) or {}).get("media_id") not in self.uploads:
            return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
        if self.daily_quota is not None:
            if self.daily_quota <= 0:
                return JSONResponse({"errcode": 45009, "errmsg": "reach max api daily quota limit"})
            self.daily_quota -= 1
        body = await request.json()
        if len(str((body.get("text") or {}).get("content", "")).encode()) > 2048:
            return JSONResponse({"errcode": 45002, "errmsg": "content size out of limit"})
        self.sent.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def _upload(self, request: Request) -> JSONResponse:
        if (error := self._token_error(request)) is not None:
            return error
        kind = request.query_params.get("type", "")
        if kind not in UPLOADS:
            return JSONResponse({"errcode": 40004, "errmsg": "invalid media type"})
        upload = (await request.form()).get("media")
        if not isinstance(upload, UploadFile):
            return JSONResponse({"errcode": 41005, "errmsg": "media data missing"})
        content = await upload.read()
        types, limit = UPLOADS[kind]
        if upload.content_type not in types:
            return JSONResponse({"errcode": 40005, "errmsg": "invalid file type"})
        if len(content) > limit:
            return JSONResponse({"errcode": 40006, "errmsg": "invalid meida size"})
        media_id = secrets.token_urlsafe(16)
        self.uploads[media_id] = {
            "type": kind,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "content": content,
        }
        return JSONResponse({"type": kind, "media_id": media_id, "created_at": int(time.time())})

    async def _media_get(self, request: Request) -> Response:
        if (error := self._token_error(request)) is not None:
            return error
        found = self.media.get(request.query_params.get("media_id", ""))
        if found is None:
            return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
        content, content_type = found
        return Response(
            content,
            media_type=content_type,
            headers={"Content-disposition": 'attachment; filename="media"'},
        )

    async def _user_info(self, request: Request) -> JSONResponse:
        if (error := self._token_error(request)) is not None:
            return error
        openid = request.query_params.get("openid", "")
        user = self.users.get(openid)
        if user is None:
            return JSONResponse({"errcode": 40003, "errmsg": "invalid openid"})
        return JSONResponse(
            {
                "subscribe": 1,
                "openid": openid,
                "nickname": user["nickname"],
                "language": "en",
                "headimgurl": f"{self.base_url}/headimg/{user['headimg']}",
                "subscribe_time": int(time.time()),
            }
        )

    async def _headimg(self, name: str) -> Response:
        if name not in self.headimgs:
            return Response(status_code=404)
        return Response(self.headimgs[name], media_type="image/jpeg")

    async def _typing(self, request: Request) -> JSONResponse:
        if (error := self._token_error(request)) is not None:
            return error
        body = await request.json()
        if body.get("command") not in {"Typing", "CancelTyping"}:
            return JSONResponse({"errcode": 44002, "errmsg": "empty post data"})
        self.typing.append(body)
        return JSONResponse({"errcode": 0, "errmsg": "ok"})
