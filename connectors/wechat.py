"""WeChat Official Account: XML messages, customer-service send, cached access token."""

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from datetime import time as dt_time
from typing import Any

import httpx
from defusedxml import ElementTree

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.inbound import InboundMessage

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


def to_inbound(fields: dict[str, str]) -> InboundMessage | None:
    if fields.get("MsgType") != "text" or not fields.get("MsgId") or not fields.get("FromUserName"):
        return None
    return InboundMessage(
        fields["MsgId"], fields["FromUserName"], fields["FromUserName"], fields.get("Content", "")
    )


class WeChatClient:
    """Customer-service API with one access token per app, fetched single-flight."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_base: str,
        *,
        budget: ForcedRefreshBudget | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._http = http
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

    async def send_typing(self, connector: Connector, openid: str) -> None:
        await self._api(connector, "message/custom/typing", {"touser": openid, "command": "Typing"})

    async def _api(
        self, connector: Connector, path: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        renew: str | None = None  # how the token is renewed before the second try
        for attempt in range(2):
            token = await self._token(connector, renew=renew)
            body = await self._post(
                f"{self._base}/cgi-bin/{path}", {"access_token": token}, payload
            )
            code = int(body.get("errcode", 0))
            if code == 0:
                return body
            if attempt == 0 and code == EXPIRED_TOKEN:
                renew = "fetch"  # expired: the platform already has the next one
                continue
            if attempt == 0 and code in INVALID_TOKEN:
                if self._budget.take(connector.public["app_id"]):
                    renew = "force"
                    continue
                raise DeliveryError(
                    f"{code} token refused; forced refreshes are rationed, retrying later",
                    permanent=False,
                )
            raise self._error(code, body)
        raise AssertionError("unreachable")

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
        self, url: str, params: dict[str, str], payload: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            response = await self._http.post(url, params=params, json=payload, timeout=10.0)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None
        if response.status_code >= 500:
            raise DeliveryError(f"http {response.status_code}", permanent=False)
        try:
            return dict(response.json())
        except ValueError:
            raise DeliveryError(f"http {response.status_code}", permanent=False) from None
