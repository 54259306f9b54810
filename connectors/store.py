"""Mongo state of the connectors: platform conversations, seen platform ids, the outbox."""

import time
from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

SEEN_TTL_S = 48 * 3600  # ≥ Telegram's 24 h retention; Meta retries for less


@dataclass(frozen=True)
class PlatformConversation:
    tenant: str
    connector_id: str
    platform: str
    platform_user_id: str
    conversation_id: str
    chat_ref: str  # where replies go: Telegram chat id, Messenger PSID, WeChat OpenID
    generation: int = 0
    closed: bool = False


class ConnectorStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._conversations = db["connector_conversations"]
        self._seen = db["connector_seen"]
        self._outbox = db["connector_outbox"]

    async def ensure_indexes(self) -> None:
        await self._seen.create_index("at", expireAfterSeconds=SEEN_TTL_S)
        await self._conversations.create_index("conversation_id")
        await self._outbox.create_index("connector_id")

    # --- conversations ---------------------------------------------------------
    async def conversation_for_user(
        self, tenant: str, platform: str, user: str
    ) -> PlatformConversation | None:
        doc = await self._conversations.find_one({"_id": f"{tenant}|{platform}|{user}"})
        return None if doc is None else _conversation(doc)

    async def save_conversation(self, conv: PlatformConversation) -> None:
        key = f"{conv.tenant}|{conv.platform}|{conv.platform_user_id}"
        await self._conversations.update_one(
            {"_id": key},
            {"$set": {**conv.__dict__, "closed": False, "at": time.time()}},
            upsert=True,
        )

    async def mark_closed(self, tenant: str, conversation_id: str) -> None:
        await self._conversations.update_one(
            {"tenant": tenant, "conversation_id": conversation_id}, {"$set": {"closed": True}}
        )

    async def by_conversation_id(
        self, tenant: str, conversation_id: str
    ) -> PlatformConversation | None:
        doc = await self._conversations.find_one(
            {"tenant": tenant, "conversation_id": conversation_id}
        )
        return None if doc is None else _conversation(doc)

    async def touch(self, conv: PlatformConversation) -> None:
        """The user wrote just now (Messenger's 24-hour window starts again)."""
        key = f"{conv.tenant}|{conv.platform}|{conv.platform_user_id}"
        await self._conversations.update_one({"_id": key}, {"$set": {"last_inbound": time.time()}})

    async def last_inbound(self, conv: PlatformConversation) -> float | None:
        doc = await self._conversations.find_one(
            {"_id": f"{conv.tenant}|{conv.platform}|{conv.platform_user_id}"}
        )
        return None if doc is None else doc.get("last_inbound")

    # --- dedupe of platform ids (a TTL set, not a high-water mark) ---------------
    async def seen(self, key: str) -> bool:
        return await self._seen.find_one({"_id": key}) is not None

    async def remember(self, key: str) -> None:
        try:
            await self._seen.insert_one({"_id": key, "at": _now_dt()})
        except DuplicateKeyError:
            pass

    # --- outbox ----------------------------------------------------------------
    async def enqueue(self, message_id: str, item: dict[str, Any]) -> None:
        """Keyed by message id: replaying the log never queues a reply twice."""
        await self._outbox.update_one(
            {"_id": message_id}, {"$setOnInsert": {**item, "attempts": 0}}, upsert=True
        )

    async def pending_connectors(self) -> list[str]:
        return list(await self._outbox.distinct("connector_id", {"done": {"$ne": True}}))

    async def pending(self, connector_id: str, limit: int = 50) -> list[dict[str, Any]]:
        query = {"connector_id": connector_id, "done": {"$ne": True}}
        return [doc async for doc in self._outbox.find(query).sort("queued_at", 1).limit(limit)]

    async def mark(self, message_id: str, **fields: Any) -> None:
        await self._outbox.update_one({"_id": message_id}, {"$set": fields})

    async def finish(self, message_id: str) -> None:
        await self._outbox.update_one({"_id": message_id}, {"$set": {"done": True}}, upsert=True)

    async def is_finished(self, message_id: str) -> bool:
        return await self._outbox.find_one({"_id": message_id, "done": True}) is not None


def _conversation(doc: dict[str, Any]) -> PlatformConversation:
    return PlatformConversation(
        doc["tenant"],
        doc["connector_id"],
        doc["platform"],
        doc["platform_user_id"],
        doc["conversation_id"],
        doc["chat_ref"],
        doc.get("generation", 0),
        doc.get("closed", False),
    )


def _now_dt() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
