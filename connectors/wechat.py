"""WeChat Official Account: XML messages (text, image, voice, video, follow events),
customer-service sends (text, image, voice via temporary media), user/info, media/get, and
the cached access token."""

import asyncio
import json
import time
from typing import Any

import httpx
from defusedxml import ElementTree

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.inbound import Inbound, InboundBlocked, InboundMessage, InboundRating, Profile
from connectors.media import (
    MB,
    FetchedFile,
    InboundMedia,
    OutboundFile,
    checked_type,
    download,
    too_large,
    unsupported,
)

TOKEN_ERRORS = {40001, 40014, 42001}  # stale/invalid/expired token: refetch once and retry
TRANSIENT_CODES = {-1, 45009}
REFRESH_MARGIN_S = 300  # refresh this long before expiry
# Temporary media the customer-service API can send: type → (media type, limit) (media/upload)
SENDABLE = {
    "image/png": ("image", 10 * MB),
    "image/jpeg": ("image", 10 * MB),
    "image/gif": ("image", 10 * MB),
    "audio/amr": ("voice", 2 * MB),
    "audio/mpeg": ("voice", 2 * MB),
}
INBOUND_MEDIA = {  # MsgType → (file name suffix, type WeChat serves it as)
    "image": (".jpg", "image/jpeg"),
    "voice": (".amr", "audio/amr"),
    "video": (".mp4", "video/mp4"),
    "shortvideo": (".mp4", "video/mp4"),
}
RATING_HINT = "Reply with a number from 1 (poor) to 5 (excellent)."


def parse_xml(raw: bytes) -> dict[str, str]:
    root = ElementTree.fromstring(raw)  # defused: entities and DTDs are refused
    return {child.tag: (child.text or "") for child in root}


def to_inbound(fields: dict[str, str]) -> Inbound | None:
    kind, user = fields.get("MsgType"), fields.get("FromUserName")
    if not user:
        return None
    if kind == "event" and fields.get("Event") in {"subscribe", "unsubscribe"}:
        # events have no MsgId: WeChat's own advice is FromUserName + CreateTime
        key = f"event:{user}:{fields.get('CreateTime', '')}"
        return InboundBlocked(key, user, user, fields["Event"] == "unsubscribe")
    if not fields.get("MsgId"):
        return None
    if kind == "text":
        return InboundMessage(fields["MsgId"], user, user, fields.get("Content", ""))
    if kind in INBOUND_MEDIA and fields.get("MediaId"):
        suffix, content_type = INBOUND_MEDIA[kind]
        media = InboundMedia(
            fields["MediaId"], kind, f"{kind}_{fields['MsgId']}{suffix}", content_type
        )
        return InboundMessage(fields["MsgId"], user, user, "", media=(media,))
    return None


class WeChatClient:
    """Customer-service API with one access token per app, fetched single-flight.

    ``fetch`` gets URLs the platform names (profile pictures), through the SSRF guard.
    """

    def __init__(self, http: httpx.AsyncClient, api_base: str, fetch: httpx.AsyncClient) -> None:
        self._http = http
        self._fetch = fetch
        self._base = api_base.rstrip("/")
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def send_text(
        self, connector: Connector, openid: str, text: str, *, last_inbound: float | None = None
    ) -> str:
        await self._api(
            connector,
            "message/custom/send",
            {"touser": openid, "msgtype": "text", "text": {"content": text}},
        )
        return ""

    def check_file(self, content_type: str, size: int) -> None:
        if content_type not in SENDABLE:
            raise unsupported("WeChat", content_type, "PNG, JPEG and GIF images, AMR and MP3 voice")
        kind, limit = SENDABLE[content_type]
        if size > limit:
            raise too_large("WeChat", f"{kind} files", size, limit)

    async def send_file(
        self,
        connector: Connector,
        openid: str,
        file: OutboundFile,
        *,
        last_inbound: float | None = None,
    ) -> str:
        """Uploaded as temporary media (media/upload, kept 3 days), then sent by its media_id."""
        kind, _ = SENDABLE[file.content_type]
        uploaded = await self._api(
            connector,
            "media/upload",
            query={"type": kind},
            files={"media": (file.filename, file.content, file.content_type)},
        )
        await self._api(
            connector,
            "message/custom/send",
            {"touser": openid, "msgtype": kind, kind: {"media_id": uploaded["media_id"]}},
        )
        return ""

    async def send_rating_request(
        self,
        connector: Connector,
        openid: str,
        text: str,
        conversation_id: str,
        *,
        last_inbound: float | None = None,
    ) -> str:
        return await self.send_text(connector, openid, f"{text}\n{RATING_HINT}")

    async def answer_rating(self, connector: Connector, rating: InboundRating) -> None:
        return None

    async def send_typing(self, connector: Connector, openid: str) -> None:
        await self._api(connector, "message/custom/typing", {"touser": openid, "command": "Typing"})

    async def fetch_media(self, connector: Connector, media: InboundMedia) -> FetchedFile:
        """media/get: the file itself, or a JSON error (an expired token is fetched again)."""
        for attempt in range(2):
            token = await self._token(connector, force=attempt > 0)
            content, headers = await download(
                self._http,
                f"{self._base}/cgi-bin/media/get",
                params={"access_token": token, "media_id": media.ref},
            )
            if "json" not in (headers.get("content-type") or "") and "text/plain" not in (
                headers.get("content-type") or ""
            ):
                name = media.filename or media.kind
                return FetchedFile(name, checked_type(media.content_type, content), content)
            self._raise_unless_token_error(_json(content), attempt)
        raise AssertionError("unreachable")

    async def profile(self, connector: Connector, openid: str) -> Profile:
        """user/info: nickname and head image (accounts that still receive them)."""
        found = await self._api(
            connector, "user/info", query={"openid": openid, "lang": "en"}, method="GET"
        )
        avatar = None
        if isinstance(found.get("headimgurl"), str) and found["headimgurl"]:
            content, headers = await self._head_image(found["headimgurl"])
            avatar = FetchedFile(
                "avatar", checked_type(headers.get("content-type"), content), content
            )
        nickname = found.get("nickname")
        return Profile(nickname if isinstance(nickname, str) and nickname else None, avatar)

    async def _head_image(self, url: str) -> tuple[bytes, httpx.Headers]:
        """WeChat names its image CDN with http://, which the SSRF guard allows only to networks
        the operator lists; refused that way, the same URL is fetched over https."""
        try:
            return await download(self._fetch, url)
        except DeliveryError as exc:
            if not (url.startswith("http://") and exc.reason.startswith("refused address")):
                raise
        return await download(self._fetch, "https://" + url.removeprefix("http://"))

    async def _api(
        self,
        connector: Connector,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        query: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        method: str = "POST",
    ) -> dict[str, Any]:
        for attempt in range(2):
            token = await self._token(connector, force=attempt > 0)
            body = await self._post(
                f"{self._base}/cgi-bin/{path}",
                {"access_token": token, **(query or {})},
                payload,
                files=files,
                method=method,
            )
            if int(body.get("errcode", 0)) == 0:
                return body
            self._raise_unless_token_error(body, attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _raise_unless_token_error(body: dict[str, Any], attempt: int) -> None:
        """Returns (try again with a fresh token) only for a first token error."""
        code = int(body.get("errcode", 0))
        if code in TOKEN_ERRORS and attempt == 0:
            return
        raise DeliveryError(
            f"{code} {str(body.get('errmsg', ''))[:150]}", permanent=code not in TRANSIENT_CODES
        )

    async def _token(self, connector: Connector, *, force: bool) -> str:
        app_id = connector.public["app_id"]
        lock = self._locks.setdefault(app_id, asyncio.Lock())
        stale = self._tokens.get(app_id)
        async with lock:
            cached = self._tokens.get(app_id)
            if cached and cached[1] > time.monotonic() and not (force and cached == stale):
                return cached[0]
            payload = {
                "grant_type": "client_credential",
                "appid": app_id,
                "secret": connector.secrets["app_secret"],
                "force_refresh": force,
            }
            body = await self._post(f"{self._base}/cgi-bin/stable_token", {}, payload)
            if "access_token" not in body:
                code = int(body.get("errcode", 0))
                raise DeliveryError(
                    f"token {code} {str(body.get('errmsg', ''))[:150]}",
                    permanent=code not in TRANSIENT_CODES,
                )
            expires = time.monotonic() + max(
                int(body.get("expires_in", 7200)) - REFRESH_MARGIN_S, 1
            )
            self._tokens[app_id] = (body["access_token"], expires)
            return body["access_token"]

    async def _post(
        self,
        url: str,
        params: dict[str, str],
        payload: dict[str, Any] | None,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        method: str = "POST",
    ) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method,
                url,
                params=params,
                json=payload,
                files=files,
                timeout=60.0 if files else 10.0,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None
        if response.status_code >= 500:
            raise DeliveryError(f"http {response.status_code}", permanent=False)
        try:
            return dict(response.json())
        except ValueError:
            raise DeliveryError(f"http {response.status_code}", permanent=False) from None


def _json(content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError:
        raise DeliveryError("media/get answered neither a file nor JSON", permanent=False) from None
    return body if isinstance(body, dict) else {}
