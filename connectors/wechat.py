"""WeChat Official Account: XML messages (text, image, voice, video, follow events),
customer-service sends (text, image, voice via temporary media), user/info, media/get, and
the cached access token."""

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from datetime import time as dt_time
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
    profile_picture,
    too_large,
    unsupported,
)
from connectors.shared_lines import link_line, location_line

# An access token the platform no longer takes: 42001 expired (a normal fetch gets the current
# one); 40001 / 40014 invalid or not the latest (another client force-refreshed it: only a
# forced refresh helps, and those are rationed — ForcedRefreshBudget).
EXPIRED_TOKEN = 42001
INVALID_TOKEN = {40001, 40014}
TRANSIENT_CODES = {-1, 45011}  # system busy; API minute quota
DAILY_QUOTA = 45009  # the API's daily quota is used up: it resets at midnight, Beijing time
# The account itself is refused: invalid AppID, invalid AppSecret, caller IP not whitelisted,
# AppSecret missing, account frozen.
CREDENTIAL_CODES = {40013, 40125, 40164, 41004, 41002, 50002}
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
BEIJING = timezone(timedelta(hours=8))
# stable_token's forced refresh: "每天限用20次且需间隔30秒" (20 a day, 30 s apart).
FORCED_PER_DAY = 20
FORCED_INTERVAL_S = 30.0


def until_quota_reset(now: datetime) -> float:
    """Seconds until WeChat's daily quotas reset (00:00 China Standard Time)."""
    local = now.astimezone(BEIJING)
    midnight = datetime.combine(local.date() + timedelta(days=1), dt_time(), BEIJING)
    return (midnight - local).total_seconds()


class ForcedRefreshBudget:
    """Whether a forced token refresh may be spent now: at most ``per_day`` a (Beijing) day
    and ``interval_s`` apart, per app. Beyond that WeChat refuses the call itself."""

    def __init__(
        self,
        *,
        per_day: int = FORCED_PER_DAY,
        interval_s: float = FORCED_INTERVAL_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._per_day, self._interval_s, self._clock = per_day, interval_s, clock
        self._spent: dict[str, list[datetime]] = {}

    def take(self, app_id: str) -> bool:
        now = self._clock()
        today = now.astimezone(BEIJING).date()
        spent = [t for t in self._spent.get(app_id, []) if t.astimezone(BEIJING).date() == today]
        if len(spent) >= self._per_day or (
            spent and (now - spent[-1]).total_seconds() < self._interval_s
        ):
            self._spent[app_id] = spent
            return False
        self._spent[app_id] = [*spent, now]
        return True


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
    line = _shared(kind, fields)
    return InboundMessage(fields["MsgId"], user, user, line) if line else None


def _shared(kind: str | None, fields: dict[str, str]) -> str | None:
    """A location or a link the user sent, as a line (WeChat sends contacts as neither)."""
    if kind == "location":
        return location_line(
            fields.get("Location_X"), fields.get("Location_Y"), fields.get("Label")
        )
    if kind == "link":
        return link_line(fields.get("Title"), fields.get("Url"))
    return None


class WeChatClient:
    """Customer-service API with one access token per app, fetched single-flight."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_base: str,
        fetch: httpx.AsyncClient,
        *,
        budget: ForcedRefreshBudget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
        self._fetch = fetch
        self._base = api_base.rstrip("/")
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._budget = budget or ForcedRefreshBudget(clock=clock)
        self._clock = clock

    async def send_text(
        self, connector: Connector, openid: str, text: str, *, last_inbound: float | None = None
    ) -> str:
        # at most 2048 bytes: the deliverer splits longer replies (connectors/splitting.py)
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

    async def fetch_media(self, connector: Connector, media: InboundMedia) -> FetchedFile:
        """media/get: the file itself, or a JSON error (an expired token is fetched again)."""
        renew: str | None = None
        for attempt in range(2):
            token = await self._token(connector, renew=renew)
            content, headers = await download(
                self._http,
                f"{self._base}/cgi-bin/media/get",
                params={"access_token": token, "media_id": media.ref},
            )
            kind = headers.get("content-type") or ""
            if "json" not in kind and "text/plain" not in kind:
                name = media.filename or media.kind
                return FetchedFile(name, checked_type(media.content_type, content), content)
            renew = self._renewal(connector, _json(content), attempt)
        raise AssertionError("unreachable")

    async def profile(self, connector: Connector, openid: str) -> Profile:
        """user/info: nickname and head image (accounts that still receive them)."""
        found = await self._api(
            connector, "user/info", query={"openid": openid, "lang": "en"}, method="GET"
        )
        picture = found.get("headimgurl")
        avatar = None
        if isinstance(picture, str) and picture:
            avatar = await profile_picture(lambda: self._head_image(picture))
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

    async def send_typing(self, connector: Connector, openid: str) -> None:
        await self._api(connector, "message/custom/typing", {"touser": openid, "command": "Typing"})

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
        renew: str | None = None  # how the token is renewed before the second try
        for attempt in range(2):
            token = await self._token(connector, renew=renew)
            body = await self._post(
                f"{self._base}/cgi-bin/{path}",
                {"access_token": token, **(query or {})},
                payload,
                files=files,
                method=method,
            )
            if int(body.get("errcode", 0)) == 0:
                return body
            renew = self._renewal(connector, body, attempt)
        raise AssertionError("unreachable")

    def _renewal(self, connector: Connector, body: dict[str, Any], attempt: int) -> str:
        """How to renew the token before the second try; raises for any other error."""
        code = int(body.get("errcode", 0))
        if attempt == 0 and code == EXPIRED_TOKEN:
            return "fetch"  # expired: the platform already has the next one
        if attempt == 0 and code in INVALID_TOKEN:
            if self._budget.take(connector.public["app_id"]):
                return "force"
            raise DeliveryError(
                f"{code} token refused; forced refreshes are rationed, retrying later",
                permanent=False,
            )
        raise self._error(code, body)

    def _error(self, code: int, body: dict[str, Any], prefix: str = "") -> DeliveryError:
        reason = f"{prefix}{code} {str(body.get('errmsg', ''))[:150]}"
        if code == DAILY_QUOTA:
            return DeliveryError(reason, permanent=False, defer_s=until_quota_reset(self._clock()))
        return DeliveryError(
            reason,
            permanent=code not in TRANSIENT_CODES | INVALID_TOKEN | {EXPIRED_TOKEN},
            credentials=code in CREDENTIAL_CODES,
        )

    async def _token(self, connector: Connector, *, renew: str | None) -> str:
        app_id = connector.public["app_id"]
        lock = self._locks.setdefault(app_id, asyncio.Lock())
        stale = self._tokens.get(app_id)
        async with lock:
            cached = self._tokens.get(app_id)
            if cached and cached[1] > time.monotonic() and not (renew and cached == stale):
                return cached[0]  # fresh, or renewed by a concurrent call while we waited
            payload = {
                "grant_type": "client_credential",
                "appid": app_id,
                "secret": connector.secrets["app_secret"],
                "force_refresh": renew == "force",
            }
            body = await self._post(f"{self._base}/cgi-bin/stable_token", {}, payload)
            if "access_token" not in body:
                raise self._error(int(body.get("errcode", 0)), body, prefix="token ")
            expires = time.monotonic() + max(
                int(body.get("expires_in", 7200)) - REFRESH_MARGIN_S, 1
            )
            self._tokens[app_id] = (body["access_token"], expires)
            return str(body["access_token"])

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
