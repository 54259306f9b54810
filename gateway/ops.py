"""Client operations: authorise, then publish a chat event or send a command to its owner.

Plain chat events (``send``, ``typing``, ``read``) go straight onto the log; decisions
(``start``, ``accept``, ``decline``, ``transfer``, ``close``, ``rate``, ``status``) go to
agent_service's single-writer queue. Event and command ids derive from the client's
idempotency key, so a resend after a lost ack is the same event. The ack is sent only
after the broker confirmed (or the owner decided).
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError

from contracts import Actor, Envelope, InvalidPayload, UnknownType, derive_event_id
from contracts.base import Id
from contracts.commands.conversation import (
    AcceptConversation,
    CloseConversation,
    DeclineConversation,
    RateConversation,
    ReportAgentConnectionLost,
    RequestConversation,
    SetAgentStatus,
    TransferConversation,
)
from contracts.events.connector import OutboundRetryRequested
from contracts.events.conversation import ContactProvided
from contracts.events.message import AttachmentSent, MessageRead, MessageSent, TypingChanged
from contracts.queries.admin import GroupsListQuery
from contracts.queries.agent import ConversationStateQuery
from contracts.registry import COMMANDS, EVENTS
from gateway.auth.permissions import TRANSFER
from gateway.auth.tokens import AgentPrincipal, Principal, VisitorPrincipal
from gateway.directory import ConversationDirectory, ConversationInfo
from gateway.frames import (
    MAX_KEY_LENGTH,
    CloseFrame,
    ContactFrame,
    ConversationFrame,
    FrameError,
    RateFrame,
    ReadFrame,
    RetryDeliveryFrame,
    SendFrame,
    StartFrame,
    StatusFrame,
    TransferFrame,
    TypingFrame,
    parse_frame,
)
from gateway.message_index import MessageIndex
from gateway.visibility import may_read_conversation, may_write_conversation
from relaydesk.bus import Bus, RemoteError, RequestTimeout
from relaydesk.bus.connection import PublishFailed
from relaydesk.bus.rpc import RpcClient
from relaydesk.metrics import MESSAGES, series
from relaydesk.tracing import span

log = structlog.get_logger(__name__)
AN_ID: TypeAdapter[str] = TypeAdapter(Id)
MAX_REPORT_BACKOFF_S = 10.0
ACTORS_KEPT = 100_000  # distinct senders whose Actor is kept (a few MB at most)

__all__ = ["MAX_KEY_LENGTH", "OpError", "Operations"]


class OpError(Exception):
    """A refused op; ``field`` names the frame's field at fault, when one is."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


Handler = Callable[[Principal, str, Any], Awaitable[dict[str, Any]]]


@functools.lru_cache(maxsize=ACTORS_KEPT)
def actor_of(kind: str, actor_id: str) -> Actor:
    """The ``actor`` of a principal's events. Built once per principal and kept (an Actor is
    frozen): validating a new one per chat message was ~2 % of the gateway's CPU under load."""
    return Actor(kind=kind, id=actor_id)  # type: ignore[arg-type]


class Operations:
    def __init__(
        self,
        bus: Bus,
        rpc: RpcClient,
        directory: ConversationDirectory,
        *,
        request_timeout_s: float,
        messages: MessageIndex | None = None,
    ) -> None:
        self._bus = bus
        self._rpc = rpc
        self._directory = directory
        self._timeout = request_timeout_s
        self._messages = messages or MessageIndex(rpc, timeout_s=request_timeout_s)
        self._handlers: dict[str, tuple[str, Handler]] = {
            "start": ("customer", self._start),
            "send": ("any", self._send),
            "typing": ("any", self._typing),
            "read": ("any", self._read),
            "close": ("any", self._close),
            "rate": ("customer", self._rate),
            "contact": ("customer", self._contact),
            "status": ("agent", self._status),
            "accept": ("agent", self._accept),
            "decline": ("agent", self._decline),
            "transfer": ("agent", self._transfer),
            "retry_delivery": ("agent", self._retry_delivery),
        }

    @property
    def table(self) -> dict[str, str]:
        """Each op and who may send it: ``customer``, ``agent`` or ``any`` (docs/protocol.md)."""
        return {op: who for op, (who, _) in self._handlers.items()}

    async def handle(self, principal: Principal, frame: dict[str, Any]) -> dict[str, Any]:
        op, key = frame.get("op"), frame.get("id")
        if op not in self._handlers:
            raise OpError("unknown_op", f"unknown op {op!r}")
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise OpError("bad_frame", "every op needs an 'id' (idempotency key, 1-64 chars)")
        who, handler = self._handlers[op]
        if who != "any" and principal.kind != who:
            raise OpError("forbidden", f"{op!r} is not allowed for a {principal.kind}")
        try:
            parsed = parse_frame(op, frame)
        except FrameError as exc:
            raise OpError("invalid_payload", exc.message, exc.field) from None
        try:
            with span(f"ws {op}", kind="server", attributes={"relaydesk.tenant": principal.tenant}):
                return await handler(principal, key, parsed)
        except (InvalidPayload, UnknownType) as exc:
            raise OpError(exc.code, str(exc)) from None
        except PublishFailed:
            raise OpError(
                "unavailable", "the event log did not confirm; resend with the same id"
            ) from None
        except RequestTimeout:
            raise OpError(
                "unavailable", "the deciding service did not answer; resend with the same id"
            ) from None

    async def writable(self, principal: Principal, conversation_id: object) -> ConversationInfo:
        """The conversation, if ``principal`` may write into it (HTTP uploads use this)."""
        return await self._writable(principal, conversation_id)

    async def publish_attachment(
        self, principal: Principal, key: str, info: ConversationInfo, attachment: dict[str, Any]
    ) -> dict[str, Any]:
        """Publish ``message.attachment_sent`` for a file already stored; ids come from ``key``."""
        message_id = derive_event_id(principal.tenant, principal.actor_id, key)
        data = {
            "conversation_id": info.conversation_id,
            "message_id": message_id,
            "author_kind": "agent" if principal.kind == "agent" else "customer",
            "author_id": principal.actor_id,
            **attachment,
        }
        try:
            published = await self._publish_event(
                principal,
                key,
                AttachmentSent.TYPE,
                1,
                info.conversation_id,
                data,
                event_id=message_id,
            )
        except PublishFailed:
            raise OpError(
                "unavailable", "the event log did not confirm; resend with the same key"
            ) from None
        _count_message(principal, info)
        return {**published, "message_id": message_id}

    # --- helpers -------------------------------------------------------------------

    @staticmethod
    def _actor(principal: Principal) -> Actor:
        return actor_of(
            "agent" if isinstance(principal, AgentPrincipal) else "customer", principal.actor_id
        )

    async def conversation(self, principal: Principal, conversation_id: object) -> ConversationInfo:
        if (
            not isinstance(conversation_id, str)
            or not conversation_id
            or len(conversation_id) > 128
        ):
            raise OpError("invalid_payload", "conversation_id is required")
        info = self._directory.get(principal.tenant, conversation_id)
        if info is None:
            try:
                state = await self._rpc.ask(
                    ConversationStateQuery(
                        tenant=principal.tenant, conversation_id=conversation_id
                    ),
                    timeout=self._timeout,
                )
            except RemoteError:
                raise OpError("not_found", "no such conversation") from None
            except RequestTimeout:
                raise OpError("unavailable", "conversation lookup timed out") from None
            info = self._directory.from_state(principal.tenant, state)
        return info

    async def _publish_event(
        self,
        principal: Principal,
        key: str,
        type_name: str,
        v: int,
        conversation_id: str,
        data: dict[str, Any],
        *,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        event_id = event_id or derive_event_id(principal.tenant, principal.actor_id, key)
        envelope = Envelope(
            id=event_id,
            type=type_name,
            v=v,
            tenant=principal.tenant,
            stream=f"conv:{conversation_id}",
            actor=self._actor(principal),
            correlation_id=event_id,
            data=data,
        )
        EVENTS.parse_envelope(envelope)  # validate before anything reaches the log
        await self._bus.publish(envelope)
        return {"event_id": event_id}

    async def _command(
        self, principal: Principal, key: str, type_name: str, stream: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        command_id = derive_event_id(principal.tenant, principal.actor_id, key)
        envelope = Envelope(
            id=command_id,
            type=type_name,
            tenant=principal.tenant,
            stream=stream,
            actor=self._actor(principal),
            correlation_id=command_id,
            data=data,
        )
        COMMANDS.parse_envelope(envelope)
        reply = await self._rpc.command("agent", envelope, timeout=self._timeout)
        if not reply.ok:
            raise OpError(reply.code or "rejected", reply.message or "rejected")
        return {
            "event_id": reply.event_ids[0] if reply.event_ids else command_id,
            "data": reply.data,
        }

    async def _writable(self, principal: Principal, conversation_id: object) -> ConversationInfo:
        info = await self.conversation(principal, conversation_id)
        if not may_write_conversation(principal, info):
            if info.tenant == principal.tenant and info.status == "closed":
                raise OpError("conversation_closed", "the conversation is closed")
            raise OpError("forbidden", "you may not write in this conversation")
        return info

    # --- ops -----------------------------------------------------------------------

    async def _start(self, principal: Principal, key: str, frame: StartFrame) -> dict[str, Any]:
        assert isinstance(principal, VisitorPrincipal)
        conversation_id = (
            "c" + derive_event_id(principal.tenant, principal.visitor_id, "start:" + key)[1:25]
        )
        given = frame.visitor.model_dump(exclude_none=True) if frame.visitor else {}
        visitor = {"id": principal.visitor_id, **given}
        data: dict[str, Any] = {
            "conversation_id": conversation_id,
            "channel": "web",
            "visitor": visitor,
        }
        if frame.department is not None:
            data["department"] = frame.department
        if frame.topic is not None:
            data["topic"] = frame.topic
        self._directory.put(
            ConversationInfo(principal.tenant, conversation_id, visitor_id=principal.visitor_id)
        )
        result = await self._command(
            principal, key, RequestConversation.TYPE, f"conv:{conversation_id}", data
        )
        return {**result, "conversation_id": conversation_id}

    async def _send(self, principal: Principal, key: str, frame: SendFrame) -> dict[str, Any]:
        info = await self._writable(principal, frame.conversation_id)
        if not frame.body.strip():
            raise OpError("invalid_payload", "body must be non-empty text", "body")
        message_id = derive_event_id(principal.tenant, principal.actor_id, key)
        data: dict[str, Any] = {
            "conversation_id": info.conversation_id,
            "message_id": message_id,
            "body": frame.body,
            "author_kind": "agent" if principal.kind == "agent" else "customer",
            "author_id": principal.actor_id,
        }
        if isinstance(principal, AgentPrincipal) and principal.name:
            data["author_name"] = principal.name[:200]
        if frame.client_ts_ms is not None:
            data["client_ts_ms"] = frame.client_ts_ms
        if principal.kind == "agent" and frame.canned_response_id is not None:
            data["canned_response_id"] = frame.canned_response_id
        published = await self._publish_event(
            principal, key, MessageSent.TYPE, 2, info.conversation_id, data, event_id=message_id
        )  # the message and its event share the id derived from the key
        _count_message(principal, info)
        return {**published, "message_id": message_id}

    async def _typing(self, principal: Principal, key: str, frame: TypingFrame) -> dict[str, Any]:
        info = await self._writable(principal, frame.conversation_id)
        data = {
            "conversation_id": info.conversation_id,
            "who_kind": principal.kind,
            "who_id": principal.actor_id,
            "typing": frame.typing,
        }
        return await self._publish_event(
            principal, key, TypingChanged.TYPE, 1, info.conversation_id, data
        )

    async def _retry_delivery(
        self, principal: Principal, key: str, frame: RetryDeliveryFrame
    ) -> dict[str, Any]:
        """A reply a platform refused is parked, not dropped: the connectors service sends it
        again, then the conversation's replies parked behind it, when this event reaches it."""
        info = await self._writable(principal, frame.conversation_id)
        data = {"conversation_id": info.conversation_id, "message_id": frame.message_id}
        return await self._publish_event(
            principal, key, OutboundRetryRequested.TYPE, 1, info.conversation_id, data
        )

    async def _read(self, principal: Principal, key: str, frame: ReadFrame) -> dict[str, Any]:
        info = await self.conversation(principal, frame.conversation_id)
        allowed = (
            may_read_conversation(principal, info)
            if isinstance(principal, AgentPrincipal)
            else info.visitor_id == principal.actor_id
        )
        if not allowed:
            raise OpError("forbidden", "you may not read this conversation")
        try:
            known = await self._messages.exists(
                principal.tenant, info.conversation_id, frame.message_id
            )
        except (RemoteError, RequestTimeout):
            raise OpError("unavailable", "the message could not be looked up; resend") from None
        if not known:
            raise OpError("not_found", "no message with this id in the conversation", "message_id")
        data = {
            "conversation_id": info.conversation_id,
            "message_id": frame.message_id,
            "reader_kind": principal.kind,
            "reader_id": principal.actor_id,
        }
        return await self._publish_event(
            principal, key, MessageRead.TYPE, 1, info.conversation_id, data
        )

    async def _close(self, principal: Principal, key: str, frame: CloseFrame) -> dict[str, Any]:
        info = await self._writable(principal, frame.conversation_id)
        data: dict[str, Any] = {
            "conversation_id": info.conversation_id,
            "closed_by": "agent" if principal.kind == "agent" else "customer",
        }
        if frame.reason is not None:
            data["reason"] = frame.reason
        return await self._command(
            principal, key, CloseConversation.TYPE, f"conv:{info.conversation_id}", data
        )

    async def _rate(self, principal: Principal, key: str, frame: RateFrame) -> dict[str, Any]:
        info = await self.conversation(principal, frame.conversation_id)
        if info.visitor_id != principal.actor_id:
            raise OpError("forbidden", "you may only rate your own conversation")
        data = {
            "conversation_id": info.conversation_id,
            "score": frame.score,
            "comment": frame.comment,
        }
        return await self._command(
            principal, key, RateConversation.TYPE, f"conv:{info.conversation_id}", data
        )

    async def _contact(self, principal: Principal, key: str, frame: ContactFrame) -> dict[str, Any]:
        """The customer's email for a conversation nobody could take (the widget's offline form)."""
        info = await self._writable(principal, frame.conversation_id)
        data = {"conversation_id": info.conversation_id, "email": frame.email}
        return await self._publish_event(
            principal, key, ContactProvided.TYPE, 1, info.conversation_id, data
        )

    async def _status(self, principal: Principal, key: str, frame: StatusFrame) -> dict[str, Any]:
        data: dict[str, Any] = {"agent_id": principal.actor_id, "status": frame.status}
        if frame.max_chats is not None:
            data["max_chats"] = frame.max_chats
        return await self._command(
            principal, key, SetAgentStatus.TYPE, f"agent:{principal.actor_id}", data
        )

    async def _accept(
        self, principal: Principal, key: str, frame: ConversationFrame
    ) -> dict[str, Any]:
        info = await self.conversation(principal, frame.conversation_id)
        result = await self._command(
            principal,
            key,
            AcceptConversation.TYPE,
            f"conv:{info.conversation_id}",
            {"conversation_id": info.conversation_id, "agent_id": principal.actor_id},
        )
        self._directory.accepted(info, result.get("data") or {})
        return result

    async def _decline(
        self, principal: Principal, key: str, frame: ConversationFrame
    ) -> dict[str, Any]:
        info = await self.conversation(principal, frame.conversation_id)
        return await self._command(
            principal,
            key,
            DeclineConversation.TYPE,
            f"conv:{info.conversation_id}",
            {"conversation_id": info.conversation_id, "agent_id": principal.actor_id},
        )

    async def _transfer(
        self, principal: Principal, key: str, frame: TransferFrame
    ) -> dict[str, Any]:
        info = await self._writable(principal, frame.conversation_id)
        # Checked after the lookup so another tenant's id still answers not_found, not forbidden.
        if not principal.can(TRANSFER):
            raise OpError("forbidden", f"missing permission {TRANSFER}")
        data: dict[str, Any] = {
            "conversation_id": info.conversation_id,
            "from_agent_id": principal.actor_id,
        }
        for optional in ("to_agent_id", "note"):
            value = getattr(frame, optional)
            if value is not None:
                data[optional] = value
        if frame.to_group is not None:
            data["to_group"] = await self._group_id(principal, frame.to_group)
        return await self._command(
            principal, key, TransferConversation.TYPE, f"conv:{info.conversation_id}", data
        )

    async def _group_id(self, principal: Principal, wanted: str) -> str:
        """A group named as agents know it (its name, any case) as its id; an id, or a
        department routing matches, as it is. Agents see groups by name only: the console's
        "to group" field took only an id, which no page shows."""
        try:
            groups = await self._rpc.ask(
                GroupsListQuery(tenant=principal.tenant), timeout=self._timeout
            )
        except RequestTimeout:
            raise OpError("unavailable", "the groups could not be looked up; resend") from None
        if any(group.group_id == wanted for group in groups):
            return wanted
        named = [g.group_id for g in groups if g.name.casefold() == wanted.strip().casefold()]
        if len(named) > 1:
            raise OpError(
                "invalid_payload",
                f"{len(named)} groups are named {wanted!r}: ask an admin to rename one",
                "to_group",
            )
        if named:
            return named[0]
        try:
            return AN_ID.validate_python(wanted)  # a department, or no one: routing says which
        except ValidationError:
            raise OpError("not_found", f"no group named {wanted!r}", "to_group") from None

    async def connection_lost(
        self,
        agent: AgentPrincipal,
        still_gone: Callable[[], bool] = lambda: True,
        *,
        first_backoff_s: float = 1.0,
    ) -> None:
        """The agent's last socket on this gateway closed: tell the owner, again until it
        is told or the agent is back (``still_gone`` False).

        Sent once, a report made while the broker was down was lost, and the agent stayed
        online and offered chats for good with no socket to see them. A resend is the same
        command (its id), decided once.
        """
        envelope = Envelope(
            type=ReportAgentConnectionLost.TYPE,
            tenant=agent.tenant,
            stream=f"agent:{agent.agent_id}",
            actor=Actor(kind="system", id="gateway"),
            data={"agent_id": agent.agent_id},
        )
        backoff = first_backoff_s
        while still_gone():
            try:
                await self._rpc.command("agent", envelope, timeout=self._timeout)
                return
            except (RequestTimeout, ConnectionError, RuntimeError) as exc:
                log.warning("connection_lost_not_sent", error=type(exc).__name__)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_REPORT_BACKOFF_S)


def _count_message(principal: Principal, info: ConversationInfo) -> None:
    """A message on the log: ``in`` from the customer, ``out`` from an agent (a resend with the
    same key counts again: the metric counts publishes, the log dedupes them)."""
    series(MESSAGES, info.channel, "out" if principal.kind == "agent" else "in").inc()
