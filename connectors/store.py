"""Mongo state of the connectors: platform conversations, seen platform ids, the outbox."""

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from beanie.operators import NE, Eq, Set, SetOnInsert
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from connectors.documents import OutboxItem, PlatformConversationDocument, SeenPlatformId
from relaydesk.store import ascending, bound


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
    rating_pending: bool = False  # asked to rate the closed conversation, no answer yet


class ConnectorStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db

    async def _conversations(self) -> type[PlatformConversationDocument]:
        return await bound(self._db, PlatformConversationDocument)

    async def _outbox(self) -> type[OutboxItem]:
        return await bound(self._db, OutboxItem)

    # --- conversations ---------------------------------------------------------
    async def conversation_for_user(
        self, tenant: str, platform: str, user: str
    ) -> PlatformConversation | None:
        doc = await (await self._conversations()).get(f"{tenant}|{platform}|{user}")
        return None if doc is None else _conversation(doc)

    async def save_conversation(self, conv: PlatformConversation) -> None:
        c = await self._conversations()
        key = f"{conv.tenant}|{conv.platform}|{conv.platform_user_id}"
        # $set, not a replace: the user's last_inbound survives a reopened conversation.
        await c.find_one(c.id == key).update(
            Set({**asdict(conv), "closed": False, "rating_pending": False, "at": time.time()}),
            upsert=True,
        )

    async def await_rating(self, tenant: str, conversation_id: str) -> None:
        """The user was asked to rate the conversation (a typed 1…5 is then the answer)."""
        c = await self._conversations()
        await c.find_one(c.tenant == tenant, c.conversation_id == conversation_id).update(
            Set({c.rating_pending: True})
        )

    async def rating_answered(self, tenant: str, conversation_id: str) -> None:
        c = await self._conversations()
        await c.find_one(c.tenant == tenant, c.conversation_id == conversation_id).update(
            Set({c.rating_pending: False})
        )

    async def mark_closed(self, tenant: str, conversation_id: str) -> None:
        c = await self._conversations()
        await c.find_one(c.tenant == tenant, c.conversation_id == conversation_id).update(
            Set({c.closed: True})
        )

    async def by_conversation_id(
        self, tenant: str, conversation_id: str
    ) -> PlatformConversation | None:
        c = await self._conversations()
        doc = await c.find_one(c.tenant == tenant, c.conversation_id == conversation_id)
        return None if doc is None else _conversation(doc)

    async def touch(self, conv: PlatformConversation) -> None:
        """The user wrote just now (Messenger's 24-hour window starts again)."""
        c = await self._conversations()
        key = f"{conv.tenant}|{conv.platform}|{conv.platform_user_id}"
        await c.find_one(c.id == key).update(Set({c.last_inbound: time.time()}))

    async def last_inbound(self, conv: PlatformConversation) -> float | None:
        doc = await (await self._conversations()).get(
            f"{conv.tenant}|{conv.platform}|{conv.platform_user_id}"
        )
        return None if doc is None else doc.last_inbound

    # --- dedupe of platform ids (a TTL set, not a high-water mark) ---------------
    async def seen(self, key: str) -> bool:
        return await (await bound(self._db, SeenPlatformId)).get(key) is not None

    async def remember(self, key: str) -> None:
        seen = await bound(self._db, SeenPlatformId)
        try:
            await seen(id=key, at=datetime.now(UTC)).insert()
        except DuplicateKeyError:
            pass

    # --- outbox ----------------------------------------------------------------
    async def enqueue(self, message_id: str, item: dict[str, Any]) -> None:
        """Keyed by message id: replaying the log never queues a reply twice."""
        outbox = await self._outbox()
        # Only the fields given (and attempts): the deliverer reads a missing
        # platform_message_id as "not sent yet".
        queued = outbox(id=message_id, attempts=0, **item).model_dump(
            exclude_unset=True, exclude={"id"}
        )
        await outbox.find_one(outbox.id == message_id).update(SetOnInsert(queued), upsert=True)

    async def pending_connectors(self) -> list[str]:
        outbox = await self._outbox()
        return list(await outbox.distinct(str(outbox.connector_id), NE(outbox.done, True)))

    async def pending(self, connector_id: str, limit: int = 50) -> list[dict[str, Any]]:
        outbox = await self._outbox()
        query = outbox.find(outbox.connector_id == connector_id, NE(outbox.done, True))
        return [  # the stored fields only, as above
            item.model_dump(by_alias=True, exclude_unset=True, exclude={"revision_id"})
            async for item in query.sort(ascending(outbox.queued_at)).limit(limit)
        ]

    async def mark(self, message_id: str, **fields: Any) -> None:
        outbox = await self._outbox()
        await outbox.find_one(outbox.id == message_id).update(Set(fields))

    async def finish(self, message_id: str) -> None:
        outbox = await self._outbox()
        await outbox.find_one(outbox.id == message_id).update(Set({outbox.done: True}), upsert=True)

    async def is_finished(self, message_id: str) -> bool:
        outbox = await self._outbox()
        return await outbox.find_one(outbox.id == message_id, Eq(outbox.done, True)) is not None


def _conversation(doc: PlatformConversationDocument) -> PlatformConversation:
    return PlatformConversation(
        doc.tenant,
        doc.connector_id,
        doc.platform,
        doc.platform_user_id,
        doc.conversation_id,
        doc.chat_ref,
        doc.generation,
        doc.closed,
        doc.rating_pending,
    )
