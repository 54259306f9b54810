"""Telegram Bot API: webhook parsing, sendMessage / sendChatAction, error mapping."""

from typing import Any

import httpx

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.inbound import InboundMessage
from connectors.secret_compare import matches

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CREDENTIAL_CODES = {401, 404}
# The update types asked for, by getUpdates and by setWebhook alike.
ALLOWED_UPDATES = ["message"]


def secret_token_ok(connector: Connector, header_value: str | None) -> bool:
    return matches(connector.secrets.get("webhook_secret", ""), header_value)


def parse_update(update: dict[str, Any]) -> InboundMessage | None:
    """A private text message → an inbound message; anything else is acknowledged and ignored."""
    message = update.get("message")
    if (
        not isinstance(message, dict)
        or not isinstance(message.get("text"), str)
        or not isinstance(update.get("update_id"), int)
    ):
        return None
    chat = message.get("chat") or {}
    sender = message.get("from") or {}
    user_id = sender.get("id", chat.get("id"))
    if user_id is None or chat.get("id") is None:
        return None
    return InboundMessage(
        str(update["update_id"]),
        str(user_id),
        chat_ref(message),
        message["text"],
        sender.get("first_name"),
    )


def chat_ref(message: dict[str, Any]) -> str:
    """Where a conversation lives: the chat, and in a forum supergroup the topic (its
    ``message_thread_id``), written ``chat:topic``; replies go back to the same place."""
    chat_id = str((message.get("chat") or {}).get("id"))
    topic = message.get("message_thread_id")
    if message.get("is_topic_message") and isinstance(topic, int):
        return f"{chat_id}:{topic}"
    return chat_id


def destination(ref: str) -> dict[str, int]:
    """``chat_id`` (and ``message_thread_id``) for a send to the chat ``ref`` names."""
    chat_id, _, topic = ref.partition(":")
    return {"chat_id": int(chat_id), **({"message_thread_id": int(topic)} if topic else {})}


class TelegramClient:
    def __init__(self, http: httpx.AsyncClient, api_base: str) -> None:
        self._http = http
        self._base = api_base.rstrip("/")

    async def call(
        self, connector: Connector, method: str, params: dict[str, Any], *, timeout: float = 10.0
    ) -> Any:
        url = f"{self._base}/bot{connector.secrets['bot_token']}/{method}"
        try:
            response = await self._http.post(url, json=params, timeout=timeout)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None
        return _result(response)

    async def send_text(
        self, connector: Connector, chat_id: str, text: str, *, last_inbound: float | None = None
    ) -> str:
        result = await self.call(
            connector, "sendMessage", {**destination(chat_id), "text": text}
        )  # at most 4096 characters: the deliverer splits longer replies (connectors/splitting.py)
        return str(result.get("message_id", ""))

    async def send_typing(self, connector: Connector, chat_id: str) -> None:
        await self.call(connector, "sendChatAction", {**destination(chat_id), "action": "typing"})


def _result(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        raise DeliveryError(f"http {response.status_code}", permanent=False) from None
    if body.get("ok"):
        return body.get("result")
    code = int(body.get("error_code", response.status_code))
    description = str(body.get("description", ""))[:150]
    retry_after = (body.get("parameters") or {}).get("retry_after")
    if code == 429:
        raise DeliveryError(
            f"429 {description}", permanent=False, retry_after=float(retry_after or 1)
        )
    # 5xx are transient; 400/401/403/404 (blocked, bad chat, revoked token) do not heal by retrying.
    # 401 Unauthorized and 404 Not Found (what a wrong bot token gets) refuse the bot itself.
    raise DeliveryError(
        f"{code} {description}",
        permanent=code < 500 and code != 409,
        credentials=code in CREDENTIAL_CODES,
    )
