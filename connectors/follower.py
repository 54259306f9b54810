"""Follows the log: folds connector configuration, queues agent replies, mirrors typing."""

import asyncio
import time
from typing import Any

import structlog

from connectors.config import ConnectorDirectory
from connectors.conversations import ConnectorConversations
from connectors.deliverer import Deliverer
from connectors.delivery import DeliveryError
from connectors.outbound_items import RATING_REQUEST, PlatformClient
from connectors.plans import TenantPlans
from connectors.store import ConnectorStore
from contracts.envelope import LoggedEvent
from contracts.events.connector import (
    ConnectorConfigured,
    ConnectorRemoved,
    ConnectorResumed,
    OutboundRetryRequested,
    OutboundSent,
)
from contracts.events.conversation import ConversationClosed
from contracts.events.message import AttachmentSent, MessageSent, SystemNote, TypingChanged
from contracts.ids import derive_event_id
from relaydesk.store import Checkpoints

log = structlog.get_logger(__name__)

CHECKPOINT = "connectors.outbound"
CHECKPOINT_EVERY_S = 2.0  # when batches have no effect, still move the checkpoint this often
# What a widget visitor sees that a platform user hears too: the greeting and other notices,
# "no one is available", an agent joining, closing (and the rating request after it). Leaves
# and transfer notes are agent-side bookkeeping: the join line that follows says it all.
FORWARDED_NOTES = frozenset({"notice", "missed", "joined", "closed"})
# What concerns a conversation's platform chat only: replies, notes, closes, typing.
CONVERSATION_TYPES = frozenset(
    {
        MessageSent.TYPE,
        AttachmentSent.TYPE,
        SystemNote.TYPE,
        ConversationClosed.TYPE,
        TypingChanged.TYPE,
    }
)


class LogFollower:
    """Configuration is folded from the whole log; replies only after the stored position."""

    def __init__(
        self,
        directory: ConnectorDirectory,
        store: ConnectorStore,
        checkpoints: Checkpoints,
        deliverer: Deliverer,
        clients: dict[str, PlatformClient],
        plans: TenantPlans | None = None,
    ) -> None:
        self._directory = directory
        self._plans = plans
        self._store = store
        self._checkpoints = checkpoints
        self._deliverer = deliverer
        self._clients = clients
        self._position: int | None = None
        self._typing: set[asyncio.Task[None]] = set()
        self._saved_at = 0.0
        # (tenant, connector id) -> its secrets, by the log, and as logged (sealed: what a
        # snapshot keeps)
        self._secrets: dict[tuple[str, str], dict[str, str]] = {}
        self._sealed: dict[tuple[str, str], str] = {}
        self.conversations = ConnectorConversations()
        self.folded_to = -1  # the last log position folded

    def state(self) -> dict[str, Any]:
        """The log's secrets of each connector, sealed, and the platform conversations."""
        return {
            "sealed": [[tenant, cid, sealed] for (tenant, cid), sealed in self._sealed.items()],
            "conversations": self.conversations.ids(),
        }

    def restore(self, state: dict[str, Any], position: int) -> None:
        """The fold :meth:`state` was taken of, at log ``position`` (its directory restored)."""
        for tenant, connector_id, sealed in state["sealed"]:
            self._sealed[(tenant, connector_id)] = sealed
            secrets, _ = self._directory.opened(sealed, tenant, connector_id, position)
            self._secrets[(tenant, connector_id)] = secrets
        self.conversations.load([(tenant, cid) for tenant, cid in state["conversations"]])
        self.folded_to = position

    async def load(self) -> None:
        self._position = await self._checkpoints.load(CHECKPOINT)
        # Those the log no longer holds (its retention) are in the store: it saves each one
        # before its conversation is requested.
        self.conversations.load(await self._store.conversation_ids())

    async def apply(self, batch: list[LoggedEvent]) -> None:
        queued = acted = False
        for event in batch:
            usable = self._directory.apply(event)
            credentials_changed = usable and self._note_credentials(event)
            self.conversations.apply(event)
            if self._plans is not None:
                self._plans.apply(event)
            if self._position is not None and event.position <= self._position:
                continue  # already handled before a restart
            outcome = await self._handle(event, credentials_changed)
            queued = queued or outcome is True
            acted = acted or outcome is not None
        self._position = self.folded_to = batch[-1].position
        # Every effect is idempotent by message id, so a batch with none needs no checkpoint
        # of its own (at worst a restart re-reads it); a web-only log costs no write per event.
        if acted or time.monotonic() - self._saved_at >= CHECKPOINT_EVERY_S:
            await self._checkpoints.save(CHECKPOINT, self._position)
            self._saved_at = time.monotonic()
        if queued:
            self._deliverer.wake()

    def _note_credentials(self, event: LoggedEvent) -> bool:
        """True for a ``connector.configured`` whose secrets differ from the ones the log gave
        that connector before (a new token): what the old ones had parked may go now. Same
        secrets (other settings changed, a re-seal under a new key): the platform would
        refuse them again.

        Called right after the directory folded ``event``, so it holds this event's
        connector. The previous secrets are this follower's own record, in log order: the
        decider folds its configurations into the same directory as soon as they are
        published, before this follower reads them back from the log."""
        env = event.envelope
        key = (env.tenant, str(env.data.get("connector_id")))
        if env.type == ConnectorRemoved.TYPE:
            self._secrets.pop(key, None)
            self._sealed.pop(key, None)
        if env.type != ConnectorConfigured.TYPE:
            return False
        self._sealed[key] = str(env.data.get("sealed_config"))
        connector = self._directory.find(key[1])
        secrets = dict(connector.secrets) if connector is not None else {}
        previous = self._secrets.get(key)
        self._secrets[key] = secrets
        # A first configuration (or one after a removal, perhaps by another tenant: ids are
        # global) had no earlier credentials, so nothing of its own waits for new ones.
        return previous is not None and previous != secrets

    async def _handle(self, event: LoggedEvent, credentials_changed: bool) -> bool | None:
        """True: a reply was queued; False: something else was done; None: nothing to do."""
        env, data = event.envelope, event.envelope.data
        if env.type in CONVERSATION_TYPES and not self.conversations.holds(
            env.tenant, str(data.get("conversation_id"))
        ):
            return None  # a web conversation: nothing to look up in the store
        if env.type == MessageSent.TYPE and data.get("author_kind") == "agent":
            return await self._queue_reply(env.tenant, data)
        if env.type == AttachmentSent.TYPE and data.get("author_kind") == "agent":
            attachment = {
                k: data.get(k) for k in ("attachment_id", "filename", "content_type", "size")
            }
            return await self._queue_reply(
                env.tenant, data, kind="attachment", attachment=attachment
            )
        if env.type == SystemNote.TYPE and data.get("kind") in FORWARDED_NOTES:
            queued = await self._queue_reply(env.tenant, {**data, "body": data.get("text", "")})
            if queued and data.get("kind") == "closed":
                await self._queue_rating_request(env.tenant, str(data.get("conversation_id")))
            return queued
        if env.type == ConnectorConfigured.TYPE:
            # New credentials: what the old ones had parked goes out again, in order.
            connector_id = str(data.get("connector_id"))
            if credentials_changed and await self._store.unpark_connector(env.tenant, connector_id):
                log.info("connector_outbox_resumed", connector_id=connector_id)
            self._deliverer.resume(connector_id)
            return True
        if env.type == ConnectorRemoved.TYPE:
            return await self._abandon_outbox(env.tenant, str(data.get("connector_id")))
        if env.type == ConnectorResumed.TYPE:
            self._deliverer.wake()  # its queued replies go out now, in order
            return True
        if env.type == OutboundRetryRequested.TYPE:
            released = await self._store.release_from(
                env.tenant, str(data.get("conversation_id")), str(data.get("message_id"))
            )
            log.info("connector_retry_released", replies=released)
            return True
        if env.type == OutboundSent.TYPE:
            await self._store.finish(
                str(data.get("message_id"))
            )  # a reply already delivered is never sent again
        elif env.type == ConversationClosed.TYPE:
            await self._store.mark_closed(env.tenant, str(data.get("conversation_id")))
        elif (
            env.type == TypingChanged.TYPE
            and data.get("who_kind") == "agent"
            and data.get("typing")
        ):
            await self._start_typing(env.tenant, str(data.get("conversation_id")))
        else:
            return None
        return False

    async def _abandon_outbox(self, tenant: str, connector_id: str) -> bool:
        """A removed connector's unsent replies are reported failed by the deliverer, never
        sent: the id may be taken next by another tenant, whose bot must not carry them."""
        abandoned = await self._store.abandon_connector(tenant, connector_id)
        log.info("connector_outbox_abandoned", connector_id=connector_id, replies=abandoned)
        return True  # wakes the deliverer

    async def _queue_reply(
        self, tenant: str, data: dict, *, kind: str | None = None, **extra: object
    ) -> bool | None:
        conv = await self._store.by_conversation_id(tenant, str(data.get("conversation_id")))
        if conv is None:
            return None  # a web conversation: not ours
        item = {
            "tenant": tenant,
            "connector_id": conv.connector_id,
            "platform": conv.platform,
            "conversation_id": conv.conversation_id,
            "chat_ref": conv.chat_ref,
            "body": data.get("body"),
            "queued_at": time.time(),
            **({"kind": kind} if kind else {}),
            **extra,
        }
        await self._store.enqueue(str(data["message_id"]), item)
        return True

    async def _queue_rating_request(self, tenant: str, conversation_id: str) -> None:
        """After the closing line: rating buttons (Telegram), quick replies (Messenger), a
        "reply 1 to 5" text (WeChat). The answer becomes ``conversation.rate``."""
        message_id = derive_event_id(tenant, "connectors", "rating-request:" + conversation_id)
        data = {"conversation_id": conversation_id, "message_id": message_id}
        if await self._queue_reply(tenant, {**data, "body": RATING_REQUEST}, kind="rating"):
            await self._store.await_rating(tenant, conversation_id)

    async def _start_typing(self, tenant: str, conversation_id: str) -> None:
        conv = await self._store.by_conversation_id(tenant, conversation_id)
        connector = None if conv is None else self._directory.get(conv.connector_id, conv.platform)
        if conv is None or connector is None or connector.paused or connector.tenant != tenant:
            return
        task = asyncio.create_task(
            self._send_typing(connector, conv.chat_ref)
        )  # best effort, never holds the log
        self._typing.add(task)
        task.add_done_callback(self._typing.discard)

    async def _send_typing(self, connector, chat_ref: str) -> None:  # type: ignore[no-untyped-def]
        try:
            await self._clients[connector.platform].send_typing(connector, chat_ref)
        except DeliveryError as exc:
            log.info(
                "connector_typing_not_sent", connector_id=connector.connector_id, reason=exc.reason
            )
