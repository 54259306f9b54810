"""Mongo state of the connectors: platform conversations, seen platform ids, the outbox."""

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from beanie.operators import GTE, NE, And, Eq, Inc, Or, Set, SetOnInsert
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from connectors.documents import (
    OutboxItem,
    PlatformConversationDocument,
    PlatformMessage,
    SeenPlatformId,
)
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

    @property
    def key(self) -> str:
        """One conversation per connector (bot, page, account) and platform chat: a user id is
        the same for every bot of a platform, and one user writes in several chats."""
        return chat_key(self.tenant, self.connector_id, self.chat_ref)


def chat_key(tenant: str, connector_id: str, chat_ref: str) -> str:
    return f"{tenant}|{connector_id}|{chat_ref}"


@dataclass(frozen=True)
class Parked:
    kind: str  # "credentials" (the connector was refused) or "message"
    since: float  # queued_at of the conversation's first parked reply
    message_id: str = ""  # that reply: the later ones wait behind it


class ConnectorStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self._db = db

    async def _conversations(self) -> type[PlatformConversationDocument]:
        return await bound(self._db, PlatformConversationDocument)

    async def _outbox(self) -> type[OutboxItem]:
        return await bound(self._db, OutboxItem)

    # --- conversations ---------------------------------------------------------
    async def conversation_for_chat(
        self, tenant: str, connector_id: str, platform: str, chat_ref: str
    ) -> PlatformConversation | None:
        c = await self._conversations()
        doc = await c.get(chat_key(tenant, connector_id, chat_ref))
        if doc is None:
            # Mappings stored before chats were keyed by connector were keyed
            # tenant|platform|user; one still names this connector's chat until it is saved again.
            legacy = await c.get(f"{tenant}|{platform}|{chat_ref}")
            if legacy is not None and (legacy.connector_id, legacy.chat_ref) == (
                connector_id,
                chat_ref,
            ):
                doc = await self._rekey(legacy, chat_key(tenant, connector_id, chat_ref))
        return None if doc is None else _conversation(doc)

    async def _rekey(
        self, legacy: PlatformConversationDocument, key: str, **changes: str
    ) -> PlatformConversationDocument:
        """Moves a mapping to another key (one document per conversation, so a lookup by
        conversation id never finds a stale copy): a legacy one to its chat key, a moved
        chat's to its new id."""
        c = await self._conversations()
        fields = {**legacy.model_dump(exclude={"id", "revision_id"}), **changes}
        await c.find_one(c.id == key).update(SetOnInsert(fields), upsert=True)
        await legacy.delete()
        moved = await c.get(key)
        assert moved is not None
        return moved

    async def move_chat(self, tenant: str, connector_id: str, old_ref: str, new_ref: str) -> None:
        """The chat has a new id (a Telegram group upgraded to a supergroup): its conversation
        and its unsent replies go on there."""
        c = await self._conversations()
        mapping = await c.get(chat_key(tenant, connector_id, old_ref))
        if mapping is not None:
            await self._rekey(mapping, chat_key(tenant, connector_id, new_ref), chat_ref=new_ref)
        outbox = await self._outbox()
        await outbox.find(
            outbox.tenant == tenant,
            outbox.connector_id == connector_id,
            outbox.chat_ref == old_ref,
            NE(outbox.done, True),
        ).update_many(Set({"chat_ref": new_ref}))

    async def save_conversation(self, conv: PlatformConversation) -> None:
        c = await self._conversations()
        # $set, not a replace: the chat's last_inbound survives a reopened conversation.
        await c.find_one(c.id == conv.key).update(
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

    async def conversation_ids(self) -> list[tuple[str, str]]:
        """(tenant, conversation id) of every platform chat's conversation, ids only."""
        c = await self._conversations()
        cursor = c.get_pymongo_collection().find({}, {"tenant": 1, "conversation_id": 1})
        return [(doc["tenant"], doc["conversation_id"]) async for doc in cursor]

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
        await c.find_one(c.id == conv.key).update(Set({c.last_inbound: time.time()}))

    async def last_inbound(self, tenant: str, conversation_id: str) -> float | None:
        """When the user last wrote in this conversation's chat (read at send time: a user who
        writes again while a reply waits opens Messenger's window for it)."""
        c = await self._conversations()
        doc = await c.find_one(c.tenant == tenant, c.conversation_id == conversation_id)
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

    # --- which conversation a platform message went into (for its edits) -----------
    async def place_message(
        self, tenant: str, connector_id: str, message_ref: str, conversation_id: str
    ) -> None:
        messages = await bound(self._db, PlatformMessage)
        key = chat_key(tenant, connector_id, message_ref)
        await messages.find_one(messages.id == key).update(
            SetOnInsert({"conversation_id": conversation_id, "at": datetime.now(UTC)}),
            upsert=True,
        )

    async def conversation_of_message(
        self, tenant: str, connector_id: str, message_ref: str
    ) -> str | None:
        messages = await bound(self._db, PlatformMessage)
        found = await messages.get(chat_key(tenant, connector_id, message_ref))
        return None if found is None else found.conversation_id

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
        return list(
            await outbox.distinct(
                str(outbox.connector_id),
                And(
                    NE(outbox.done, True),
                    Or(NE(outbox.parked, True), NE(outbox.failure_reported, True)),
                ),
            )
        )

    async def pending(self, connector_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The connector's replies to send, oldest first (parked ones wait apart)."""
        outbox = await self._outbox()
        query = outbox.find(
            outbox.connector_id == connector_id, NE(outbox.done, True), NE(outbox.parked, True)
        )
        return [  # the stored fields only, as above
            item.model_dump(by_alias=True, exclude_unset=True, exclude={"revision_id"})
            async for item in query.sort(ascending(outbox.queued_at)).limit(limit)
        ]

    async def parked(self, connector_id: str) -> dict[str, Parked]:
        """The connector's parked conversations: conversation id → why (``credentials`` /
        ``message``) and since which reply (its ``queued_at``). A reply queued behind a parked
        one waits with it (order is kept)."""
        outbox = await self._outbox()
        query = outbox.find(
            outbox.connector_id == connector_id, NE(outbox.done, True), Eq(outbox.parked, True)
        )
        found: dict[str, Parked] = {}
        async for item in query.sort(ascending(outbox.queued_at)):
            found.setdefault(
                str(item.conversation_id),
                Parked(item.parked_kind or "message", item.queued_at or 0.0, str(item.id)),
            )
        return found

    async def parked_unreported(self, connector_id: str) -> list[dict[str, Any]]:
        """Parked replies whose report did not reach the log (a crash, an outage)."""
        outbox = await self._outbox()
        query = outbox.find(
            outbox.connector_id == connector_id,
            NE(outbox.done, True),
            Eq(outbox.parked, True),
            NE(outbox.failure_reported, True),
        )
        return [
            item.model_dump(by_alias=True, exclude_unset=True, exclude={"revision_id"})
            async for item in query.sort(ascending(outbox.queued_at))
        ]

    async def release_from(self, tenant: str, conversation_id: str, message_id: str) -> int:
        """An agent retried ``message_id``: it goes again, then the replies of its conversation
        parked behind it, in order (they wait for it: order is kept). Earlier parked replies
        stay parked: they go first, on their own retry. Nothing when ``message_id`` is not
        parked (sent meanwhile, or never a reply of this conversation)."""
        outbox = await self._outbox()
        named = await outbox.find_one(
            outbox.id == message_id,
            outbox.tenant == tenant,
            outbox.conversation_id == conversation_id,
            Eq(outbox.parked, True),
            NE(outbox.done, True),
        )
        if named is None:
            return 0
        return await self._unpark(
            outbox.find(
                outbox.tenant == tenant,
                outbox.conversation_id == conversation_id,
                Eq(outbox.parked, True),
                NE(outbox.done, True),
                GTE(outbox.queued_at, named.queued_at or 0.0),
            )
        )

    async def unpark_connector(self, tenant: str, connector_id: str) -> int:
        """The connector's credentials changed: what they had parked goes again, in order."""
        outbox = await self._outbox()
        return await self._unpark(
            outbox.find(
                outbox.tenant == tenant,
                outbox.connector_id == connector_id,
                Eq(outbox.parked, True),
                outbox.parked_kind == "credentials",
                NE(outbox.done, True),
            )
        )

    async def abandon_connector(self, tenant: str, connector_id: str) -> int:
        """The tenant removed the connector: its unsent replies, parked or queued, are handed
        to the deliverer to be reported as failed ("connector removed"), never sent — its id
        may be taken next by another tenant's bot."""
        outbox = await self._outbox()
        result = await outbox.find(
            outbox.tenant == tenant, outbox.connector_id == connector_id, NE(outbox.done, True)
        ).update_many(
            Set({"connector_removed": True, "parked": False, "failure_reported": False}),
            Inc({"round": 1}),
        )
        return int(getattr(result, "modified_count", 0) or 0)

    @staticmethod
    async def _unpark(query: Any) -> int:
        # A new round: its results are new events (their ids carry the round).
        result = await query.update_many(
            Set({"parked": False, "failure_reported": False, "parked_behind": None}),
            Inc({"round": 1}),
        )
        return int(getattr(result, "modified_count", 0) or 0)

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
