"""Turns one verified platform update into the events a widget visitor's action produces.

A message (text, or files with their caption) → ``message.sent`` / ``message.attachment_sent``;
an edit → ``message.edited``; a rating button or reply → the ``conversation.rate`` command;
the user blocking the bot → ``connector.user_blocked``. Every event id derives from
(tenant, connector, platform id), so a platform resend publishes the same ids.
"""

from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.media import FetchedFile, InboundMedia
from connectors.store import ConnectorStore, PlatformConversation
from contracts.commands.conversation import RateConversation, RequestConversation
from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events.connector import InboundReceived, UserBlocked
from contracts.events.message import AttachmentSent, MessageEdited, MessageSent
from contracts.ids import derive_event_id
from relaydesk.attachments import AttachmentStore, StoredAttachment
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.metrics import MESSAGES, series

log = structlog.get_logger(__name__)

# Where a rating is answered by typing 1…5 (WeChat has no buttons); Telegram and Messenger
# rate with buttons, so a typed digit there is a message (docs/connectors.md).
TYPED_RATINGS = frozenset({"wechat"})


# What the console shows as the topic of a group chat's conversation: replies go to all.
GROUP_CHAT_TOPIC = "Group chat: replies go to every member"


@dataclass(frozen=True)
class InboundMessage:
    platform_message_id: str  # the dedupe key: Telegram update_id, Messenger mid, WeChat MsgId
    platform_user_id: str
    chat_ref: str
    text: str
    user_name: str | None = None
    media: tuple[InboundMedia, ...] = ()
    # The platform's id of the message itself, which its edits name (Telegram chat:message_id,
    # Messenger mid); None: the platform has no edits.
    message_ref: str | None = None
    # A group chat's title (Telegram groups): the conversation is with the group, and a
    # reply goes to every member, which the agent must see before writing.
    group_title: str | None = None


@dataclass(frozen=True)
class InboundEdit:
    platform_message_id: str
    platform_user_id: str
    chat_ref: str
    message_ref: str  # the edited message
    text: str


@dataclass(frozen=True)
class InboundRating:
    """A rating answer: a Telegram button, a Messenger quick reply, a WeChat "1"…"5" reply."""

    platform_message_id: str
    platform_user_id: str
    chat_ref: str
    score: int
    conversation_id: str | None = None  # None: the conversation the user was last asked about
    callback_id: str | None = None  # Telegram: the button press to answer


@dataclass(frozen=True)
class InboundBlocked:
    platform_message_id: str
    platform_user_id: str
    chat_ref: str
    blocked: bool


@dataclass(frozen=True)
class InboundMoved:
    """The chat has a new id (a Telegram group upgraded to a supergroup): its conversation
    goes on there."""

    platform_message_id: str
    platform_user_id: str
    chat_ref: str
    new_chat_ref: str


Inbound = InboundMessage | InboundEdit | InboundRating | InboundBlocked | InboundMoved


@dataclass(frozen=True)
class Profile:
    name: str | None = None
    avatar: FetchedFile | None = None


class MediaSource(Protocol):
    """What the bridge asks a platform client for (best effort for profiles)."""

    async def fetch_media(self, connector: Connector, media: InboundMedia) -> FetchedFile: ...
    async def profile(self, connector: Connector, user_id: str) -> Profile: ...
    async def answer_rating(self, connector: Connector, rating: InboundRating) -> None: ...


class InboundBridge:
    def __init__(
        self,
        bus: Bus,
        rpc: RpcClient,
        store: ConnectorStore,
        *,
        request_timeout_s: float,
        sources: dict[str, MediaSource] | None = None,
        files: AttachmentStore | None = None,
    ) -> None:
        self._bus = bus
        self._rpc = rpc
        self._store = store
        self._timeout = request_timeout_s
        self._sources = sources or {}
        self._files = files

    async def accept(self, connector: Connector, update: Inbound) -> bool:
        """Publish the update once; returns False for a platform resend already accepted.

        Ids are derived from (tenant, connector, platform id), so even a resend racing the
        first copy publishes the same event ids and every consumer's dedupe absorbs it.
        """
        seen_key = f"{connector.tenant}|{connector.connector_id}|{update.platform_message_id}"
        if await self._store.seen(seen_key):
            log.info(
                "connector_inbound_duplicate",
                connector_id=connector.connector_id,
                platform=connector.platform,
            )
            return False
        if isinstance(update, InboundMessage):
            await self._message(connector, update)
        elif isinstance(update, InboundEdit):
            await self._edit(connector, update)
        elif isinstance(update, InboundRating):
            await self._rating(connector, update)
        elif isinstance(update, InboundMoved):
            await self._store.move_chat(
                connector.tenant, connector.connector_id, update.chat_ref, update.new_chat_ref
            )
        else:
            await self._blocked(connector, update)
        await self._store.remember(seen_key)
        return True

    # --- messages --------------------------------------------------------------------
    async def _message(self, connector: Connector, message: InboundMessage) -> None:
        if await self._typed_rating(connector, message):
            return
        conv = await self._conversation(connector, message)
        await self._publish(connector, conv, message)

    async def _typed_rating(self, connector: Connector, message: InboundMessage) -> bool:
        """True when the message was a typed answer to the rating request, and recorded.

        Only where ratings are typed (WeChat has no buttons): on Telegram and Messenger a
        "3" is a message — in a group it may well be another member's. A rating the agent
        service refuses is a message too: the user's words are never dropped."""
        if connector.platform not in TYPED_RATINGS or message.media:
            return False
        score = _score(message.text)
        if score is None:
            return False
        asked = await self._open_conversation(connector, message.chat_ref, closed_too=True)
        if asked is None or not (asked.closed and asked.rating_pending):
            return False
        rating = InboundRating(
            message.platform_message_id,
            message.platform_user_id,
            message.chat_ref,
            score,
            asked.conversation_id,
        )
        return await self._rating(connector, rating)

    async def _conversation(
        self, connector: Connector, message: InboundMessage
    ) -> PlatformConversation:
        """The conversation ``message`` belongs to (a new one when its chat has none open),
        with the user's reply window opened by it.

        Opened before the message is published, and a new conversation's before it is
        requested: a reply to it (the agent's, or the greeting and notices a new
        conversation gets at once) must find the 24-hour Messenger window open. Opened
        after, a quick reply raced it, was judged outside the window and parked for good."""
        conv = await self._store.conversation_for_chat(
            connector.tenant, connector.connector_id, connector.platform, message.chat_ref
        )
        if conv is not None and not conv.closed:
            await self._store.touch(conv)
            return conv
        generation = (
            0 if conv is None else conv.generation + 1
        )  # a closed chat: the user starts a new one
        user_key = _user_key(connector, message.platform_user_id)
        # Derived from the chat (for a private chat, its id is the user's: the ids conversations
        # had when they were keyed by user stay the same).
        conversation_id = (
            "c"
            + derive_event_id(
                connector.tenant,
                _user_key(connector, message.chat_ref),
                f"conv:{connector.connector_id}:{generation}",
            )[1:25]
        )
        conv = PlatformConversation(
            connector.tenant,
            connector.connector_id,
            connector.platform,
            message.platform_user_id,
            conversation_id,
            message.chat_ref,
            generation,
        )
        visitor: dict[str, Any] = {
            "id": user_key,
            "platform_user_id": message.platform_user_id[:200],
        }
        profile = await self._profile(connector, message.platform_user_id)
        name = message.group_title or profile.name or message.user_name
        if name:
            visitor["name"] = name[:200]
        if profile.avatar is not None and message.group_title is None:
            visitor["avatar_attachment_id"] = await self._store_file(
                connector, conversation_id, f"avatar:{conversation_id}", profile.avatar
            )
        command = Envelope(
            id=derive_event_id(connector.tenant, user_key, "request:" + conversation_id),
            type=RequestConversation.TYPE,
            tenant=connector.tenant,
            stream=f"conv:{conversation_id}",
            actor=Actor(kind=ActorKind.connector, id=connector.connector_id),
            data={
                "conversation_id": conversation_id,
                "channel": connector.platform,
                "visitor": visitor,
                **({"topic": GROUP_CHAT_TOPIC} if message.group_title is not None else {}),
            },
        )
        # Stored first: an agent reply can then always be routed back to the platform.
        await self._store.save_conversation(conv)
        await self._store.touch(conv)
        reply = await self._rpc.command("agent", command, timeout=self._timeout)
        if not reply.ok:
            raise RuntimeError(f"conversation.request refused: {reply.code}")
        return conv

    async def _profile(self, connector: Connector, user_id: str) -> Profile:
        """The platform's name and picture of the user; nothing when the platform will not say
        (a profile is a courtesy: it never holds up the customer's message)."""
        source = self._sources.get(connector.platform)
        if source is None:
            return Profile()
        try:
            return await source.profile(connector, user_id)
        except DeliveryError as exc:
            reason = exc.reason
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            reason = "unexpected answer"
        log.info(
            "connector_profile_unavailable", connector_id=connector.connector_id, reason=reason
        )
        return Profile()

    async def _publish(
        self, connector: Connector, conv: PlatformConversation, message: InboundMessage
    ) -> None:
        tenant, key = connector.tenant, f"{connector.connector_id}:{message.platform_message_id}"
        user_key = _user_key(connector, message.platform_user_id)
        actor = Actor(kind=ActorKind.customer, id=user_key)
        author = _author(user_key, message.user_name)
        message_id = _message_id(connector, message.message_ref or message.platform_message_id)
        events: list[Envelope] = []
        text = message.text[:8000]
        failures: list[str] = []
        for index, media in enumerate(message.media):
            try:
                fetched = await self._fetch(connector, media)
            except DeliveryError as exc:
                if not exc.permanent:
                    raise  # the platform resends (Telegram, Messenger) or the webhook retries
                failures.append(f"[{media.kind} not received: {exc.reason}]")
                continue
            file_key = f"file:{key}:{index}"
            attachment_id = await self._store_file(
                connector, conv.conversation_id, file_key, fetched
            )
            data: dict[str, Any] = {
                "conversation_id": conv.conversation_id,
                "message_id": message_id
                if index == 0
                else derive_event_id(tenant, connector.connector_id, f"msg:{key}:{index}"),
                "attachment_id": attachment_id,
                "filename": fetched.filename[:200],
                "content_type": fetched.content_type[:200],
                "size": len(fetched.content),
                **author,
            }
            if text and not events:
                data["caption"] = text
            events.append(
                Envelope(
                    id=derive_event_id(tenant, connector.connector_id, f"sent:{key}:{index}"),
                    type=AttachmentSent.TYPE,
                    tenant=tenant,
                    stream=f"conv:{conv.conversation_id}",
                    actor=actor,
                    data=data,
                )
            )
        if not events or failures:
            body = "\n".join(([text] if text and not events else []) + failures)
            events.append(
                Envelope(
                    id=derive_event_id(tenant, connector.connector_id, "sent:" + key),
                    type=MessageSent.TYPE,
                    v=2,
                    tenant=tenant,
                    stream=f"conv:{conv.conversation_id}",
                    actor=actor,
                    data={
                        "conversation_id": conv.conversation_id,
                        "message_id": message_id
                        if len(events) == 0
                        else derive_event_id(tenant, connector.connector_id, "notes:" + key),
                        "body": body[:8000],
                        **author,
                    },
                )
            )
        events.append(self._received(connector, conv.conversation_id, message))
        if message.message_ref:  # its edits go where it went
            await self._store.place_message(
                connector.tenant, connector.connector_id, message.message_ref, conv.conversation_id
            )
        await self._bus.publish_many(events)
        series(MESSAGES, connector.platform, "in").inc()

    def _received(self, connector: Connector, conversation_id: str, update: Inbound) -> Envelope:
        key = f"{connector.connector_id}:{update.platform_message_id}"
        return Envelope(
            id=derive_event_id(connector.tenant, connector.connector_id, "inbound:" + key),
            type=InboundReceived.TYPE,
            tenant=connector.tenant,
            stream=f"conv:{conversation_id}",
            actor=Actor(kind=ActorKind.connector, id=connector.connector_id),
            data={
                "connector_id": connector.connector_id,
                "platform": connector.platform,
                "platform_message_id": update.platform_message_id[:200],
                "platform_user_id": update.platform_user_id[:200],
                "conversation_id": conversation_id,
            },
        )

    async def _fetch(self, connector: Connector, media: InboundMedia) -> FetchedFile:
        source = self._sources.get(connector.platform)
        if source is None or self._files is None:
            raise DeliveryError("files are not fetched here", permanent=True)
        try:
            return await source.fetch_media(connector, media)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            # a platform answer of another shape: retrying would get the same answer
            raise DeliveryError("unexpected answer from the platform", permanent=True) from None

    async def _store_file(
        self, connector: Connector, conversation_id: str, key: str, fetched: FetchedFile
    ) -> str:
        """Stored under an id derived from the platform's ids: a resend stores nothing twice."""
        assert self._files is not None, "attachments need the attachment store"
        attachment_id = "a" + derive_event_id(connector.tenant, connector.connector_id, key)[1:]
        await self._files.save(
            StoredAttachment(
                attachment_id,
                connector.tenant,
                conversation_id,
                fetched.filename[:200],
                fetched.content_type,
                len(fetched.content),
            ),
            fetched.content,
        )
        return attachment_id

    # --- edits, ratings, blocks ------------------------------------------------------
    async def _open_conversation(
        self, connector: Connector, chat_ref: str, *, closed_too: bool = False
    ) -> PlatformConversation | None:
        """The conversation of this connector's chat (closed ones too, when asked)."""
        conv = await self._store.conversation_for_chat(
            connector.tenant, connector.connector_id, connector.platform, chat_ref
        )
        if conv is None:
            return None
        return conv if closed_too or not conv.closed else None

    async def _edit(self, connector: Connector, edit: InboundEdit) -> None:
        conversation_id = await self._conversation_of_edit(connector, edit)
        if conversation_id is None:
            return  # an edit of a message from before we knew the user: nothing to attach it to
        tenant, key = connector.tenant, f"{connector.connector_id}:{edit.platform_message_id}"
        user_key = _user_key(connector, edit.platform_user_id)
        edited = Envelope(
            id=derive_event_id(tenant, connector.connector_id, "edit:" + key),
            type=MessageEdited.TYPE,
            tenant=tenant,
            stream=f"conv:{conversation_id}",
            actor=Actor(kind=ActorKind.customer, id=user_key),
            data={
                "conversation_id": conversation_id,
                "message_id": _message_id(connector, edit.message_ref),
                "edit_id": derive_event_id(tenant, connector.connector_id, "edit-id:" + key),
                "body": edit.text[:8000],
                "author_kind": "customer",
                "author_id": user_key,
            },
        )
        await self._bus.publish_many([edited, self._received(connector, conversation_id, edit)])

    async def _conversation_of_edit(self, connector: Connector, edit: InboundEdit) -> str | None:
        """The conversation the edited message went into — not the chat's current one, which
        may have opened since — else, for a message older than that record, the chat's."""
        placed = await self._store.conversation_of_message(
            connector.tenant, connector.connector_id, edit.message_ref
        )
        if placed is not None:
            return placed
        conv = await self._open_conversation(connector, edit.chat_ref, closed_too=True)
        return None if conv is None else conv.conversation_id

    async def _rating(self, connector: Connector, rating: InboundRating) -> bool:
        """Sends ``conversation.rate``; True when the agent service recorded it."""
        conv = await self._open_conversation(connector, rating.chat_ref, closed_too=True)
        conversation_id = rating.conversation_id or (conv.conversation_id if conv else None)
        source = self._sources.get(connector.platform)
        if source is not None:
            try:
                await source.answer_rating(connector, rating)
            except DeliveryError as exc:  # the button's spinner only; the rating still counts
                log.info("connector_rating_not_answered", reason=exc.reason)
        if conversation_id is None:
            return False
        user_key = _user_key(connector, rating.platform_user_id)
        command = Envelope(
            id=derive_event_id(
                connector.tenant, connector.connector_id, "rate:" + rating.platform_message_id
            ),
            type=RateConversation.TYPE,
            tenant=connector.tenant,
            stream=f"conv:{conversation_id}",
            actor=Actor(kind=ActorKind.customer, id=user_key),
            data={"conversation_id": conversation_id, "score": rating.score},
        )
        reply = await self._rpc.command("agent", command, timeout=self._timeout)
        if not reply.ok:  # rated already, another user's conversation: nothing to record
            log.info(
                "connector_rating_refused", connector_id=connector.connector_id, code=reply.code
            )
            return False
        # Only now: a refused answer (another group member's) leaves the request open for
        # the one it was asked of.
        await self._store.rating_answered(connector.tenant, conversation_id)
        return True

    async def _blocked(self, connector: Connector, blocked: InboundBlocked) -> None:
        conv = await self._open_conversation(connector, blocked.chat_ref, closed_too=True)
        if conv is None:
            return  # never wrote to us: no conversation to show it in
        tenant, key = connector.tenant, f"{connector.connector_id}:{blocked.platform_message_id}"
        event = Envelope(
            id=derive_event_id(tenant, connector.connector_id, "blocked:" + key),
            type=UserBlocked.TYPE,
            tenant=tenant,
            stream=f"conv:{conv.conversation_id}",
            actor=Actor(kind=ActorKind.connector, id=connector.connector_id),
            data={
                "connector_id": connector.connector_id,
                "platform": connector.platform,
                "conversation_id": conv.conversation_id,
                "message_id": derive_event_id(tenant, connector.connector_id, "block-id:" + key),
                "platform_user_id": blocked.platform_user_id[:200],
                "blocked": blocked.blocked,
            },
        )
        await self._bus.publish_many(
            [event, self._received(connector, conv.conversation_id, blocked)]
        )


def _score(text: str) -> int | None:
    """A rating typed as a reply: one digit from 1 to 5, nothing else."""
    text = text.strip()
    return int(text) if len(text) == 1 and text in "12345" else None


def _author(user_key: str, user_name: str | None) -> dict[str, str]:
    """Who wrote a message, named as the platform names them: in a Telegram group several
    members write in one conversation, and the agent must tell them apart."""
    author = {"author_kind": "customer", "author_id": user_key}
    if user_name and user_name.strip():
        author["author_name"] = user_name.strip()[:200]
    return author


def _message_id(connector: Connector, ref: str) -> str:
    """A platform message's id in relaydesk: its edits derive the same one."""
    return derive_event_id(
        connector.tenant, connector.connector_id, f"msg:{connector.connector_id}:{ref}"
    )


def _user_key(connector: Connector, platform_user_id: str) -> str:
    """The customer's id inside the tenant: platform-prefixed so channels never collide."""
    safe = "".join(ch if ch.isalnum() or ch in "_-.:@" else "_" for ch in platform_user_id)
    return f"{connector.platform}:{safe}"[:128]
