"""One routing decision in the making: the runtime's Decision plus routing's own steps.

Every emitted event is folded into the state at once, so the rest of the decision
(routing after a decline, queue positions after an accept) sees its effect, exactly as a
replay of the log would. Building, checking and id-ing the events is the runtime's
(relaydesk/decider.py): ids derive from the command id, so a redelivered command re-emits
the same ids and every consumer's dedupe absorbs them.
"""

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from agent_service import hours, routing
from agent_service.fold import SERVICE, apply
from agent_service.state import (
    ENGAGED,
    MISSED,
    QUEUED,
    TRANSFER_PENDING,
    Conversation,
    RoutingState,
    Tenant,
)
from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events.conversation import (
    ConversationMissed,
    ConversationOffered,
    ConversationQueued,
    OfferWithdrawn,
    TransferReturned,
)
from contracts.events.message import SystemNote
from contracts.ids import derive_event_id
from contracts.plans import PlanCatalogue
from relaydesk.decider import Decision as RuntimeDecision

SYSTEM_ACTOR = Actor(kind=ActorKind.system, id="agent_service")


def conversation_stream(data: Mapping[str, Any]) -> str:
    return f"conv:{data['conversation_id']}"


class Decision(RuntimeDecision[RoutingState]):
    """Collects the events one routing command causes, folding each into the state.

    Args:
        state: the routing state; mutated as events are emitted.
        command: the command envelope (its id seeds event ids, its actor signs events).
        now: the decision time (``occurred_at`` of every event).
        offer_timeout_s: the service default when the tenant sets none.
        grace_s: the agent disconnect grace period.
        plans: the plan catalogue whose conversation limit applies to SaaS tenants.
        fold: how an emitted event is folded (default: :func:`agent_service.fold.apply`
            on ``state``; the service also marks it as its own for the log follower).
    """

    def __init__(
        self,
        state: RoutingState,
        command: Envelope,
        *,
        now: datetime,
        offer_timeout_s: int,
        grace_s: int,
        plans: PlanCatalogue | None = None,
        fold: Callable[[Envelope], None] | None = None,
    ) -> None:
        super().__init__(
            SERVICE,
            state,
            command,
            now=now,
            fold=fold or partial(apply, state),
            stream=conversation_stream,
        )
        self.tenant: Tenant = state.tenant(command.tenant)
        self.default_offer_timeout_s = offer_timeout_s
        self.grace_s = grace_s
        self.plans = plans or PlanCatalogue.load()

    def note(self, conversation_id: str, kind: str, text: str) -> None:
        """A system line in the chat ("X has entered the chat"), visible to both sides."""
        message_id = derive_event_id(
            self.command.tenant, self.command.id, f"note-{len(self.events)}"
        )
        self.emit(
            SystemNote.TYPE,
            {
                "conversation_id": conversation_id,
                "message_id": message_id,
                "kind": kind,
                "text": text[:200],
            },
            actor=SYSTEM_ACTOR,
        )

    def setting(self, key: str) -> Any:
        return self.tenant.settings.get(key)

    def offer_timeout_s(self) -> int:
        return max(1, int(self.setting("offer_timeout_s") or self.default_offer_timeout_s))

    # --- routing steps shared by several commands ---

    def offer(
        self,
        conversation: Conversation,
        agent_ids: tuple[str, ...],
        *,
        transfer_from: str | None = None,
        actor: Actor | None = None,
        expires_in_s: int | None = None,
    ) -> None:
        """``expires_in_s``: the tenant's offer timeout unless given (joining an offer that
        already stands gets the time it has left)."""
        data: dict[str, Any] = {
            "conversation_id": conversation.conversation_id,
            "agent_ids": agent_ids,
            "expires_in_s": self.offer_timeout_s() if expires_in_s is None else expires_in_s,
        }
        if transfer_from:
            data["transfer_from"] = transfer_from
        self.emit(ConversationOffered.TYPE, data, actor=actor)

    def withdraw(
        self,
        conversation: Conversation,
        agent_ids: set[str] | tuple[str, ...],
        reason: str,
        *,
        actor: Actor | None = None,
    ) -> None:
        if agent_ids:
            pending_from = self.pending_transfer_from(conversation)
            self.emit(
                OfferWithdrawn.TYPE,
                {
                    "conversation_id": conversation.conversation_id,
                    "agent_ids": tuple(sorted(agent_ids)),
                    "reason": reason,
                },
                actor=actor,
            )
            if reason in ("expired", "agent_offline"):
                self.transfer_returned(conversation, pending_from, reason, actor=actor)

    @staticmethod
    def pending_transfer_from(conversation: Conversation) -> str | None:
        """Who asked for the pending transfer (read before a step that may end it)."""
        return conversation.transfer_from if conversation.status == TRANSFER_PENDING else None

    def transfer_returned(
        self,
        conversation: Conversation,
        pending_from: str | None,
        reason: str,
        *,
        by_agent_id: str | None = None,
        actor: Actor | None = None,
    ) -> None:
        """Tell the agent who asked for a transfer that nobody is left to take it."""
        if pending_from is None or conversation.status != ENGAGED:
            return
        data = {
            "conversation_id": conversation.conversation_id,
            "from_agent_id": pending_from,
            "reason": reason,
        }
        if by_agent_id is not None:
            data["by_agent_id"] = by_agent_id
        self.emit(TransferReturned.TYPE, data, actor=actor)

    def route(
        self, conversation: Conversation, reason: str = "waiting", *, actor: Actor | None = None
    ) -> None:
        """Offer to whoever routing picks; else keep it queued; else, nobody online, missed."""
        targets = routing.choose(self.tenant, conversation)
        if targets:
            self.offer(conversation, targets, actor=actor)
        elif routing.anyone_online_for(self.tenant, conversation):
            if conversation.status != QUEUED or conversation.position is None:
                self.queue(conversation, reason, actor=actor)
        elif conversation.status != MISSED:
            open_now = hours.is_open(
                self.setting("business_hours"), self.setting("timezone"), self.now
            )
            reason = "no_agent_online" if open_now else "outside_business_hours"
            self.emit(
                ConversationMissed.TYPE,
                {"conversation_id": conversation.conversation_id, "reason": reason},
                actor=actor,
            )
            if self.setting("offline_text"):  # the tenant's (contracts.settings); emptied: none
                self.note(conversation.conversation_id, "missed", str(self.setting("offline_text")))

    def queue(self, conversation: Conversation, reason: str, *, actor: Actor | None = None) -> None:
        position = 1 + sum(
            1 for c in self.tenant.queued() if c.seq < conversation.seq and c is not conversation
        )
        self.emit(
            ConversationQueued.TYPE,
            {
                "conversation_id": conversation.conversation_id,
                "position": position,
                "reason": reason,
            },
            actor=actor,
        )

    def drain(self) -> None:
        """Offer waiting conversations (queue order, then missed ones) to agents with room.

        A missed conversation is offered only while its customer may still be at the
        widget (they wrote within the offer timeout); older ones stay listed for pick-up
        rather than filling agents' chat limits with "live" requests nobody is behind.
        """
        recent = self.now - timedelta(seconds=self.offer_timeout_s())
        for conversation in self.tenant.waiting():
            if conversation.status == MISSED and (
                conversation.last_customer_at is None or conversation.last_customer_at < recent
            ):
                continue
            targets = routing.choose(self.tenant, conversation)
            if targets:
                self.offer(conversation, targets, actor=SYSTEM_ACTOR)

    def join_standing_offers(self, agent_id: str) -> None:
        """Broadcast: an agent who comes online, or has room again (a close, a decline, a
        chat handed on), is also offered the requests standing for others, for the time
        those offers have left. Every eligible agent with room gets a broadcast offer; one
        made before this agent could take it kept them from it until it expired (a request
        offered to an agent away from the desk waited out the whole timeout while a
        colleague who had just signed in, or just finished a chat, saw "No one is waiting")."""
        agent = self.tenant.agents.get(agent_id)
        if agent is None or self.setting("routing_mode") != "broadcast":
            return
        for conversation in self.tenant.offered():
            asked = conversation.offered_to | conversation.declined_by | conversation.expired_for
            if agent_id in asked or conversation.offer_expires_at is None:
                continue
            left_s = int((conversation.offer_expires_at - self.now).total_seconds())
            if left_s < 1 or not routing.may_be_offered(self.tenant, agent, conversation):
                continue
            self.offer(conversation, (agent_id,), expires_in_s=left_s, actor=SYSTEM_ACTOR)

    def refresh_positions(self) -> None:
        """Tell every queued customer whose place changed their new place."""
        for index, conversation in enumerate(self.tenant.queued()):
            if conversation.position != index + 1:
                self.emit(
                    ConversationQueued.TYPE,
                    {
                        "conversation_id": conversation.conversation_id,
                        "position": index + 1,
                        "reason": "waiting",
                    },
                    actor=SYSTEM_ACTOR,
                )
