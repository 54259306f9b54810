"""Deciding conversation commands: request, accept, decline, offer expiry, transfer, close, rate.

Each handler checks the state, then emits events (or a rejection) through the
:class:`Decision`; it never publishes or awaits. Rejection codes are stable
(docs/protocol.md): ``not_found``, ``forbidden``, ``already_assigned``, ``not_offered``,
``conversation_closed``, ``no_capacity``, ``unavailable``, ``not_assigned``,
``transfer_pending``, ``not_closed``, ``already_rated``, ``invalid_payload``.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from agent_service import routing
from agent_service.decision import SYSTEM_ACTOR, Decision
from agent_service.state import (
    CLOSED,
    ENGAGED,
    MISSED,
    OFFERED,
    QUEUED,
    TRANSFER_PENDING,
    Conversation,
)
from contracts.commands import conversation as commands
from contracts.commands.conversation import (
    AcceptConversation,
    CloseConversation,
    DeclineConversation,
    ExpireOffers,
    RateConversation,
    RequestConversation,
    TransferConversation,
)
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationClosed,
    ConversationMissed,
    ConversationRated,
    ConversationRequested,
    ConversationTransferred,
    OfferDeclined,
    TransferRequested,
)
from contracts.plans import period_of

# A timer may wake a little early; an offer this close to expiry counts as expired.
EXPIRY_TOLERANCE = timedelta(milliseconds=100)

Handler = Callable[[Decision, Any], None]


def agent_name(d: Decision, agent_id: str) -> str:
    agent = d.tenant.agents.get(agent_id)
    return (agent.name if agent else None) or agent_id


def acting_for_someone_else(d: Decision, agent_id: str) -> bool:
    """An agent may only act for themselves, customers never; admins and the system for anyone."""
    actor = d.command.actor
    return actor.kind in ("customer", "connector") or (
        actor.kind == "agent" and actor.id != agent_id
    )


def _open_conversation(d: Decision, conversation_id: str) -> Conversation | None:
    """The conversation if it exists and is open; otherwise rejects and returns None."""
    conversation = d.tenant.conversations.get(conversation_id)
    if conversation is None:
        d.reject("not_found", f"no conversation {conversation_id}")
    elif conversation.status == CLOSED:
        d.reject("conversation_closed", "the conversation is closed")
        return None
    return conversation


def _open_for_agent(d: Decision, conversation_id: str, agent_id: str) -> Conversation | None:
    """The open conversation an agent acts on for themselves; otherwise rejects and returns None."""
    if acting_for_someone_else(d, agent_id):
        d.reject("forbidden", "agents act for themselves only")
        return None
    return _open_conversation(d, conversation_id)


def request(d: Decision, cmd: commands.RequestConversation) -> None:
    existing = d.tenant.conversations.get(cmd.conversation_id)
    if existing is not None:  # a second start for the same conversation changes nothing
        if existing.status == CLOSED:
            d.reject("conversation_closed", "the conversation is closed")
        return
    over_limit = _conversation_limit_reached(d)
    d.emit(ConversationRequested.TYPE, cmd.model_dump(mode="json"))
    conversation = d.tenant.conversations[cmd.conversation_id]
    if over_limit is not None:
        # Recorded, never dropped: the visitor is told, the admin's billing page says why.
        d.emit(
            ConversationMissed.TYPE,
            {"conversation_id": cmd.conversation_id, "reason": "over_limit"},
        )
        d.note(
            cmd.conversation_id,
            "missed",
            "This chat is unavailable right now. Please try again later or contact us another way.",
        )
        return
    if d.setting("greeting"):  # the tenant's (contracts.settings); emptied: no greeting
        d.note(cmd.conversation_id, "notice", str(d.setting("greeting")))
    d.route(conversation)
    d.refresh_positions()


def _conversation_limit_reached(d: Decision) -> int | None:
    """The plan's monthly conversation limit when a SaaS tenant has used it up, else None."""
    if d.tenant.mode != "saas":
        return None
    limit = d.plans.get(d.tenant.plan).limit("conversations_per_month")
    if limit is None or d.tenant.requests_by_period.get(period_of(d.now), 0) < limit:
        return None
    return limit


def _accept_refusal(
    d: Decision, conversation: Conversation, agent_id: str
) -> tuple[str, str] | None:
    agent = d.tenant.agents.get(agent_id)
    if agent is not None and agent.removed:
        return ("forbidden", "the agent account was removed")
    if conversation.status == ENGAGED or (
        conversation.status == TRANSFER_PENDING and agent_id not in conversation.offered_to
    ):
        return ("already_assigned", "another agent already has this conversation")
    if conversation.status == OFFERED and agent_id not in conversation.offered_to:
        return ("not_offered", "the conversation was not offered to you")
    picking_up = conversation.status in (QUEUED, MISSED)
    if agent is None or (
        picking_up
        and not (routing.is_available(agent) and routing.covers(d.tenant, agent, conversation))
    ):
        return ("not_offered", "the conversation was not offered to you")
    if len(agent.active) >= d.tenant.capacity(agent):
        return ("no_capacity", "you are at your chat limit")
    return None


def accept(d: Decision, cmd: commands.AcceptConversation) -> None:
    if (conversation := _open_for_agent(d, cmd.conversation_id, cmd.agent_id)) is None:
        return None
    if conversation.status == ENGAGED and conversation.agent_id == cmd.agent_id:
        return None  # already theirs: a second click changes nothing
    if (refusal := _accept_refusal(d, conversation, cmd.agent_id)) is not None:
        return d.reject(*refusal)
    others = conversation.offered_to - {cmd.agent_id}
    name = agent_name(d, cmd.agent_id)
    if conversation.status == TRANSFER_PENDING:
        from_agent = conversation.agent_id or conversation.transfer_from or cmd.agent_id
        d.emit(
            ConversationTransferred.TYPE,
            {
                "conversation_id": conversation.conversation_id,
                "from_agent_id": from_agent,
                "to_agent_id": cmd.agent_id,
                "agent_name": name,
            },
        )
        d.withdraw(conversation, others, "accepted_by_other")
        from_name = agent_name(d, from_agent)
        # The transfer note is for the receiving agent (their offer card and the chat's
        # handover line in the console), never the customer: the chat line leaves it out.
        d.note(
            conversation.conversation_id,
            "transferred",
            f"{from_name} transferred the chat to {name}",
        )
        d.note(conversation.conversation_id, "left", f"{from_name} left the chat")
        d.note(conversation.conversation_id, "joined", f"{name} has entered the chat")
        d.drain()  # the previous agent has room again
        d.join_standing_offers(from_agent)
    else:
        d.emit(
            ConversationAccepted.TYPE,
            {
                "conversation_id": conversation.conversation_id,
                "agent_id": cmd.agent_id,
                "agent_name": name,
            },
        )
        d.withdraw(conversation, others, "accepted_by_other")
        d.note(conversation.conversation_id, "joined", f"{name} has entered the chat")
    d.refresh_positions()
    return None


def decline(d: Decision, cmd: commands.DeclineConversation) -> None:
    if (conversation := _open_for_agent(d, cmd.conversation_id, cmd.agent_id)) is None:
        return None
    if cmd.agent_id not in conversation.offered_to:
        return d.reject("not_offered", "the conversation is not offered to you")
    pending_from = d.pending_transfer_from(conversation)
    d.emit(
        OfferDeclined.TYPE,
        {"conversation_id": conversation.conversation_id, "agent_id": cmd.agent_id},
    )
    d.transfer_returned(conversation, pending_from, "declined", by_agent_id=cmd.agent_id)
    if conversation.status == QUEUED:  # nobody else holds an offer: find someone else
        d.route(conversation, "declined")
    d.drain()  # the decliner has room for something else
    d.join_standing_offers(cmd.agent_id)
    d.refresh_positions()
    return None


def from_our_timer(d: Decision) -> bool:
    """Timer commands come from the service itself (or an operator); anyone else is refused."""
    if d.command.actor.kind in ("system", "admin"):
        return True
    d.reject("forbidden", "only the routing service sends timer commands")
    return False


def expire_offers(d: Decision, cmd: commands.ExpireOffers) -> None:
    """Timer: offers still unanswered at their expiry are withdrawn and the chat re-offered."""
    if not from_our_timer(d):
        return
    conversation = d.tenant.conversations.get(cmd.conversation_id)
    if conversation is None or not conversation.offered_to or conversation.offer_expires_at is None:
        return
    if d.now + EXPIRY_TOLERANCE < conversation.offer_expires_at:
        return  # a newer offer stands; its own timer will come
    d.withdraw(conversation, conversation.offered_to, "expired", actor=SYSTEM_ACTOR)
    if conversation.status == QUEUED:
        d.route(conversation, "offer_timeout", actor=SYSTEM_ACTOR)
    d.drain()
    d.refresh_positions()


def transfer(d: Decision, cmd: commands.TransferConversation) -> None:
    if (conversation := _open_for_agent(d, cmd.conversation_id, cmd.from_agent_id)) is None:
        return None
    if not (cmd.to_agent_id or cmd.to_group):
        return d.reject("invalid_payload", "name to_agent_id or to_group")
    if conversation.status == TRANSFER_PENDING:
        return d.reject("transfer_pending", "a transfer of this conversation is already pending")
    if conversation.status != ENGAGED or conversation.agent_id != cmd.from_agent_id:
        return d.reject(
            "not_assigned", "the conversation is not assigned to the transferring agent"
        )
    targets = routing.transfer_targets(d.tenant, conversation, cmd.to_agent_id, cmd.to_group)
    if not targets:
        return d.reject("unavailable", "no online agent with room to transfer to")
    d.emit(TransferRequested.TYPE, cmd.model_dump(mode="json", exclude_none=True))
    d.offer(conversation, targets, transfer_from=cmd.from_agent_id)
    return None


def close(d: Decision, cmd: commands.CloseConversation) -> None:
    if (conversation := _open_conversation(d, cmd.conversation_id)) is None:
        return None
    actor = d.command.actor
    if actor.kind == "customer" and actor.id != conversation.visitor_id:
        return d.reject("forbidden", "customers close their own conversations only")
    d.withdraw(conversation, conversation.offered_to, "closed")
    d.emit(ConversationClosed.TYPE, cmd.model_dump(mode="json", exclude_none=True))
    if cmd.closed_by == "customer":
        d.note(
            conversation.conversation_id,
            "left",
            f"{conversation.visitor_name or 'The visitor'} left the chat",
        )
    d.note(
        conversation.conversation_id,
        "closed",
        f"The conversation was closed by the {cmd.closed_by}",
    )
    d.drain()  # the agent has room again
    if conversation.agent_id is not None:
        d.join_standing_offers(conversation.agent_id)
    d.refresh_positions()
    return None


def rate(d: Decision, cmd: commands.RateConversation) -> None:
    conversation = d.tenant.conversations.get(cmd.conversation_id)
    if conversation is None:
        return d.reject("not_found", f"no conversation {cmd.conversation_id}")
    if d.command.actor.kind == "customer" and d.command.actor.id != conversation.visitor_id:
        return d.reject("forbidden", "customers rate their own conversations only")
    if conversation.status != CLOSED:
        return d.reject("not_closed", "a conversation is rated after it is closed")
    if conversation.rated:
        return d.reject("already_rated", "this conversation was already rated")
    d.emit(ConversationRated.TYPE, cmd.model_dump(mode="json", exclude_none=True))
    return None


HANDLERS: dict[str, Handler] = {
    RequestConversation.TYPE: request,
    AcceptConversation.TYPE: accept,
    DeclineConversation.TYPE: decline,
    ExpireOffers.TYPE: expire_offers,
    TransferConversation.TYPE: transfer,
    CloseConversation.TYPE: close,
    RateConversation.TYPE: rate,
}
