"""Messenger Platform: verification handshake, X-Hub-Signature-256, Send API."""

import hashlib
import hmac
import time
from typing import Any

import httpx

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.inbound import InboundMessage
from connectors.secret_compare import matches

SIGNATURE_HEADER = "X-Hub-Signature-256"
WINDOW_S = 24 * 3600
TRANSIENT_CODES = {1200, 2, 4, 613}  # Meta: temporary failure, unexpected, app/API rate limits
# The page itself is refused: 190 invalid/expired access token, 200 missing permission
# (pages_messaging), 10 with no subcode (the app lacks the permission).
CREDENTIAL_CODES = {190, 200}


def signature_ok(connector: Connector, raw_body: bytes, header_value: str | None) -> bool:
    """HMAC-SHA256 of the raw bytes (Meta signs its escaped wire form; never re-serialize)."""
    secret = connector.secrets.get("app_secret", "")
    if not secret or not header_value or not header_value.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return matches(expected, header_value.removeprefix("sha256="))


def verify_token_ok(connector: Connector, mode: str | None, token: str | None) -> bool:
    return mode == "subscribe" and matches(connector.secrets.get("verify_token", ""), token)


class MalformedNotification(ValueError):
    """Signed, but not the documented ``{"object", "entry": [{"messaging": [{..}]}]}`` shape."""


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _check_shape(body: Any) -> None:
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("object"), str)
        or not _objects(body.get("entry"))
    ):
        raise MalformedNotification(
            "expected an object with 'object' and a list of 'entry' objects"
        )
    for entry in body["entry"]:
        if not _objects(entry.get("messaging", [])):
            raise MalformedNotification("'messaging' must be a list of objects")
        for event in entry.get("messaging", []):
            if any(
                key in event and not isinstance(event[key], dict)
                for key in ("sender", "recipient", "message")
            ):
                raise MalformedNotification("'sender', 'recipient' and 'message' must be objects")


def parse_notification(body: Any) -> list[InboundMessage]:
    """Every text message in every entry; echoes of our own sends are dropped (no loops).

    Raises ``MalformedNotification`` for a body that is not the documented shape: a type the
    code would trip over is refused as a whole (400), never half published.
    """
    _check_shape(body)
    if body.get("object") != "page":
        return []
    found = []
    for entry in body["entry"]:
        for event in entry.get("messaging", []):
            message = event.get("message") or {}
            sender = (event.get("sender") or {}).get("id")
            if (
                message.get("is_echo")
                or not isinstance(message.get("text"), str)
                or not message.get("mid")
                or not sender
            ):
                continue
            found.append(
                InboundMessage(str(message["mid"]), str(sender), str(sender), message["text"])
            )
    return found


def messaging(connector: Connector, last_inbound: float | None, now: float) -> dict[str, str]:
    """``messaging_type`` (and tag) for a reply: ``RESPONSE`` within 24 h of the user's last
    message; after that only the ``HUMAN_AGENT`` tag, which Meta allows for pages approved for
    it (7 days) — so only when the connector's ``human_agent_tag`` is ``"true"``; otherwise the
    reply fails at once (the platform would refuse it: 10/2018278) and waits for the user."""
    if last_inbound is not None and now - last_inbound < WINDOW_S:
        return {"messaging_type": "RESPONSE"}
    if connector.public.get("human_agent_tag") == "true":
        return {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    raise DeliveryError(
        "outside Messenger's 24-hour window (the HUMAN_AGENT tag is not enabled for this page)",
        permanent=True,
    )


class MessengerClient:
    def __init__(self, http: httpx.AsyncClient, api_base: str) -> None:
        self._http = http
        self._base = api_base.rstrip("/")

    async def send_text(
        self, connector: Connector, psid: str, text: str, *, last_inbound: float | None = None
    ) -> str:
        # at most 2000 characters: the deliverer splits longer replies (connectors/splitting.py)
        payload: dict[str, Any] = {"recipient": {"id": psid}, "message": {"text": text}}
        payload.update(messaging(connector, last_inbound, time.time()))
        result = await self._post(connector, payload)
        return str(result.get("message_id", ""))

    async def send_typing(self, connector: Connector, psid: str) -> None:
        await self._post(connector, {"recipient": {"id": psid}, "sender_action": "typing_on"})

    async def _post(self, connector: Connector, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._base}/{connector.public.get('page_id', 'me')}/messages"
        try:
            response = await self._http.post(
                url,
                params={"access_token": connector.secrets["page_token"]},
                json=payload,
                timeout=10.0,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None
        try:
            body = response.json()
        except ValueError:
            raise DeliveryError(f"http {response.status_code}", permanent=False) from None
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code < 400 and not error:
            return body
        if not isinstance(error, dict):
            raise DeliveryError(
                f"http {response.status_code}", permanent=response.status_code < 500
            )
        code = int(error.get("code", 0))
        reason = f"{code}/{error.get('error_subcode', '')} {str(error.get('message', ''))[:150]}"
        raise DeliveryError(
            reason,
            permanent=code not in TRANSIENT_CODES and response.status_code < 500,
            credentials=code in CREDENTIAL_CODES,
        )
