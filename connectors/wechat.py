"""WeChat Official Account: XML messages, customer-service send, cached access token."""

import asyncio
import time
from typing import Any

import httpx
from defusedxml import ElementTree

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.inbound import InboundMessage

TOKEN_ERRORS = {40001, 40014, 42001}  # stale/invalid/expired token: refetch once and retry
TRANSIENT_CODES = {-1, 45009}
REFRESH_MARGIN_S = 300  # refresh this long before expiry


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

    def __init__(self, http: httpx.AsyncClient, api_base: str) -> None:
        self._http = http
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

    async def send_typing(self, connector: Connector, openid: str) -> None:
        await self._api(connector, "message/custom/typing", {"touser": openid, "command": "Typing"})

    async def _api(
        self, connector: Connector, path: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        for attempt in range(2):
            token = await self._token(connector, force=attempt > 0)
            body = await self._post(
                f"{self._base}/cgi-bin/{path}", {"access_token": token}, payload
            )
            code = int(body.get("errcode", 0))
            if code == 0:
                return body
            if code in TOKEN_ERRORS and attempt == 0:
                continue
            raise DeliveryError(
                f"{code} {str(body.get('errmsg', ''))[:150]}", permanent=code not in TRANSIENT_CODES
            )
        raise AssertionError("unreachable")

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
