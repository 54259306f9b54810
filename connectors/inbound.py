"""Turns one verified platform message into the same events a widget message produces."""

from dataclasses import dataclass

import structlog

from connectors.config import Connector
from connectors.store import ConnectorStore, PlatformConversation
from contracts.commands.conversation import RequestConversation
from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events.connector import InboundReceived
from contracts.events.message import MessageSent
from contracts.ids import derive_event_id
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.metrics import MESSAGES

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    platform_message_id: str  # Telegram update_id, Messenger mid, WeChat MsgId
    platform_user_id: str
    chat_ref: str
    text: str
    user_name: str | None = None


class InboundBridge:
    def __init__(
        self, bus: Bus, rpc: RpcClient, store: ConnectorStore, *, request_timeout_s: float
    ) -> None:
        self._bus = bus
        self._rpc = rpc
        self._store = store
        self._timeout = request_timeout_s

    async def accept(self, connector: Connector, message: InboundMessage) -> bool:
        """Publish the message once; returns False for a platform resend already accepted.

        Ids are derived from (tenant, connector, platform id), so even a resend racing the
        first copy publishes the same event ids and every consumer's dedupe absorbs it.
        """
        seen_key = f"{connector.tenant}|{connector.connector_id}|{message.platform_message_id}"
        if await self._store.seen(seen_key):
            log.info(
                "connector_inbound_duplicate",
                connector_id=connector.connector_id,
                platform=connector.platform,
            )
            return False
        conv = await self._conversation(connector, message)
        await self._publish(connector, conv, message)
        await self._store.touch(conv)
        await self._store.remember(seen_key)
        return True

    async def _conversation(
        self, connector: Connector, message: InboundMessage
    ) -> PlatformConversation:
        conv = await self._store.conversation_for_chat(
            connector.tenant, connector.connector_id, connector.platform, message.chat_ref
        )
        if conv is not None and not conv.closed:
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
        visitor = {"id": user_key, "platform_user_id": message.platform_user_id[:200]}
        if message.user_name:
            visitor["name"] = message.user_name[:200]
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
            },
        )
        # Stored first: an agent reply can then always be routed back to the platform.
        await self._store.save_conversation(conv)
        reply = await self._rpc.command("agent", command, timeout=self._timeout)
        if not reply.ok:
            raise RuntimeError(f"conversation.request refused: {reply.code}")
        return conv

    async def _publish(
        self, connector: Connector, conv: PlatformConversation, message: InboundMessage
    ) -> None:
        tenant, key = connector.tenant, f"{connector.connector_id}:{message.platform_message_id}"
        user_key = _user_key(connector, message.platform_user_id)
        actor = Actor(kind=ActorKind.customer, id=user_key)
        message_id = derive_event_id(tenant, connector.connector_id, "msg:" + key)
        sent = Envelope(
            id=derive_event_id(tenant, connector.connector_id, "sent:" + key),
            type=MessageSent.TYPE,
            v=2,
            tenant=tenant,
            stream=f"conv:{conv.conversation_id}",
            actor=actor,
            data={
                "conversation_id": conv.conversation_id,
                "message_id": message_id,
                "body": message.text[:8000],
                "author_kind": "customer",
                "author_id": user_key,
            },
        )
        received = Envelope(
            id=derive_event_id(tenant, connector.connector_id, "inbound:" + key),
            type=InboundReceived.TYPE,
            tenant=tenant,
            stream=f"conv:{conv.conversation_id}",
            actor=Actor(kind=ActorKind.connector, id=connector.connector_id),
            data={
                "connector_id": connector.connector_id,
                "platform": connector.platform,
                "platform_message_id": message.platform_message_id[:200],
                "platform_user_id": message.platform_user_id[:200],
                "conversation_id": conv.conversation_id,
            },
        )
        await self._bus.publish_many([sent, received])
        MESSAGES.labels(connector.platform, "in").inc()


def _user_key(connector: Connector, platform_user_id: str) -> str:
    """The customer's id inside the tenant: platform-prefixed so channels never collide."""
    safe = "".join(ch if ch.isalnum() or ch in "_-.:@" else "_" for ch in platform_user_id)
    return f"{connector.platform}:{safe}"[:128]
