"""The fold: how each logged event changes the routing state (pure, one function per type).

Every decision agent_service makes is replayable: rebuilding the state means applying
these functions to the log from the beginning, in log order. Events of types not listed
here leave the state alone (apart from the "agent is back" rule in :func:`apply`).
"""

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import structlog

from agent_service.state import (
    CLOSED,
    ENGAGED,
    MISSED,
    OFFERED,
    QUEUED,
    TRANSFER_PENDING,
    Conversation,
    Group,
    RoutingState,
    Tenant,
)
from contracts.envelope import Envelope
from contracts.events import admin
from contracts.events import billing as billing_events
from contracts.events import conversation as conv_events
from contracts.events import routing as routing_events
from contracts.events.admin import (
    AgentCreated,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    PermissionGroupCreated,
    PermissionGroupDeleted,
    PermissionGroupUpdated,
    TenantCreated,
    TenantSettingsChanged,
)
from contracts.events.billing import SubscriptionChanged
from contracts.events.conversation import (
    AgentDisconnected,
    ConversationAccepted,
    ConversationClosed,
    ConversationMissed,
    ConversationOffered,
    ConversationQueued,
    ConversationRated,
    ConversationRequested,
    ConversationTransferred,
    OfferDeclined,
    OfferWithdrawn,
    TransferRequested,
)
from contracts.events.message import AttachmentSent, MessageRead, MessageSent
from contracts.events.routing import AgentConnectionLost
from contracts.plans import period_of
from contracts.settings import accepted_changes
from relaydesk.decider import MAX_REPLIES as RUNTIME_MAX_REPLIES
from relaydesk.decider import parsed_or_skipped, record_answer

log = structlog.get_logger(__name__)

Folder = Callable[[Tenant, Envelope, Any], None]
FOLDERS: dict[str, Folder] = {}

SERVICE = "agent"  # whose command answers this fold records (contracts/decisions.py)
# Memory bounds, applied in log order so every replay forgets the same things.
MAX_REPLIES = RUNTIME_MAX_REPLIES
CLOSED_MEMORY = timedelta(days=30)  # after that an accept or rating answers not_found
PRUNE_EVERY_REQUESTS = 1000
# Events about an agent that do not show the agent is back.
NOT_A_RETURN = frozenset({AgentConnectionLost.TYPE, AgentDisconnected.TYPE})


def folds(type_name: str) -> Callable[[Folder], Folder]:
    def register(function: Folder) -> Folder:
        FOLDERS[type_name] = function
        return function

    return register


def apply(state: RoutingState, envelope: Envelope) -> None:
    """Fold one event into ``state``. Invalid payloads are skipped (logged), never half-applied.

    Every event that answers one of our commands (declared ``DECIDED_BY = "agent"`` on its
    class, or a rejection of an ``agent`` command) is recorded as that command's reply.
    """
    folder = FOLDERS.get(envelope.type)
    if folder is not None or envelope.actor.kind == "agent":
        _fold(state.tenant(envelope.tenant), folder, envelope)
    record_answer(state.replies, envelope, SERVICE, limit=MAX_REPLIES)


def _fold(tenant: Tenant, folder: Folder | None, envelope: Envelope) -> None:
    if folder is not None:
        payload = parsed_or_skipped(envelope)
        if payload is None:
            return
        folder(tenant, envelope, payload)
    _note_agent_return(tenant, envelope)


def _note_agent_return(tenant: Tenant, envelope: Envelope) -> None:
    if envelope.actor.kind == "agent" and envelope.type not in NOT_A_RETURN:
        agent = tenant.agents.get(envelope.actor.id)
        if agent is not None:
            agent.disconnected_at, agent.connected = None, True


# --- tenants, agents, groups (published by the admin side and by agent_service) ---


@folds(TenantSettingsChanged.TYPE)
def _settings(tenant: Tenant, _: Envelope, event: admin.TenantSettingsChanged) -> None:
    tenant.settings.update(accepted_changes(event.after))


@folds(AgentCreated.TYPE)
def _agent_created(tenant: Tenant, _: Envelope, event: admin.AgentCreated) -> None:
    agent = tenant.agent(event.agent_id)
    agent.name, agent.groups, agent.max_chats, agent.removed = (
        event.name,
        tuple(event.groups),
        event.max_chats,
        False,
    )


@folds(AgentUpdated.TYPE)
def _agent_updated(tenant: Tenant, _: Envelope, event: admin.AgentUpdated) -> None:
    agent = tenant.agent(event.agent_id)
    after = event.after
    if "name" in after:
        agent.name = after["name"]
    if "groups" in after:
        agent.groups = tuple(after["groups"] or ())
    if after.get("max_chats"):
        agent.max_chats = int(after["max_chats"])


@folds(AgentRemoved.TYPE)
def _agent_removed(tenant: Tenant, _: Envelope, event: admin.AgentRemoved) -> None:
    agent = tenant.agent(event.agent_id)
    agent.removed, agent.status, agent.connected = True, "offline", False


@folds(AgentStatusChanged.TYPE)
def _agent_status(tenant: Tenant, _: Envelope, event: admin.AgentStatusChanged) -> None:
    agent = tenant.agent(event.agent_id)
    agent.status = event.status
    if event.max_chats:
        agent.max_chats = event.max_chats
    # A status decided after a disconnect (their return, or the grace expiry) ends it.
    agent.disconnected_at = None


@folds(AgentConnectionLost.TYPE)
def _agent_disconnected(
    tenant: Tenant, envelope: Envelope, event: routing_events.AgentConnectionLost
) -> None:
    agent = tenant.agent(event.agent_id)
    agent.disconnected_at, agent.grace_s = envelope.occurred_at, event.grace_s
    agent.connected = False


@folds(PermissionGroupCreated.TYPE)
def _group_created(tenant: Tenant, _: Envelope, event: admin.PermissionGroupCreated) -> None:
    tenant.groups[event.group_id] = Group(
        event.group_id, tuple(event.departments), tuple(event.channels)
    )


@folds(PermissionGroupUpdated.TYPE)
def _group_updated(tenant: Tenant, _: Envelope, event: admin.PermissionGroupUpdated) -> None:
    group = tenant.groups.setdefault(event.group_id, Group(event.group_id))
    if "departments" in event.after:
        group.departments = tuple(event.after["departments"] or ())
    if "channels" in event.after:
        group.channels = tuple(event.after["channels"] or ())


@folds(PermissionGroupDeleted.TYPE)
def _group_deleted(tenant: Tenant, _: Envelope, event: admin.PermissionGroupDeleted) -> None:
    tenant.groups.pop(event.group_id, None)


# --- plans (SaaS): what the conversation limit is checked against ---


@folds(TenantCreated.TYPE)
def _tenant_created(tenant: Tenant, _: Envelope, event: admin.TenantCreated) -> None:
    tenant.mode, tenant.plan = event.mode, event.plan or tenant.plan


@folds(SubscriptionChanged.TYPE)
def _subscription_changed(
    tenant: Tenant, _: Envelope, event: billing_events.SubscriptionChanged
) -> None:
    tenant.plan = event.plan


# --- conversations (agent_service's own decisions) ---


@folds(ConversationRequested.TYPE)
def _requested(
    tenant: Tenant, envelope: Envelope, event: conv_events.ConversationRequested
) -> None:
    if event.conversation_id in tenant.conversations:
        return
    tenant.conversations[event.conversation_id] = Conversation(
        event.conversation_id,
        event.visitor.id,
        event.channel,
        event.department,
        seq=tenant.next_seq,
        visitor_name=event.visitor.name,
        topic=event.topic,
        requested_at=envelope.occurred_at,
        last_customer_at=envelope.occurred_at,
    )
    tenant.open_ids.add(event.conversation_id)
    tenant.latest_by_visitor[event.visitor.id] = event.conversation_id
    tenant.next_seq += 1
    period = period_of(envelope.occurred_at)
    tenant.requests_by_period[period] = tenant.requests_by_period.get(period, 0) + 1
    if tenant.next_seq % PRUNE_EVERY_REQUESTS == 0:
        _forget_old_closed(tenant, envelope.occurred_at - CLOSED_MEMORY)


def _forget_old_closed(tenant: Tenant, before: datetime) -> None:
    """Bound memory: long-closed conversations leave the state (driven by log time, so a
    replay forgets exactly the same ones)."""
    old = [
        c.conversation_id
        for c in tenant.conversations.values()
        if c.closed_at is not None and c.closed_at < before
    ]
    for conversation_id in old:
        forgotten = tenant.conversations.pop(conversation_id)
        if tenant.latest_by_visitor.get(forgotten.visitor_id) == conversation_id:
            del tenant.latest_by_visitor[forgotten.visitor_id]


def _drop_offers(tenant: Tenant, conversation: Conversation, agent_ids: Iterable[str]) -> None:
    for agent_id in agent_ids:
        conversation.offered_to.discard(agent_id)
        tenant.agent(agent_id).offers.discard(conversation.conversation_id)
    if conversation.offered_to:
        return
    if conversation.status == TRANSFER_PENDING:  # nobody left to take it: it stays with its agent
        conversation.status, conversation.transfer_from = ENGAGED, None
    elif conversation.status == OFFERED:
        conversation.status = QUEUED


def _release_agent(tenant: Tenant, conversation: Conversation) -> None:
    if conversation.agent_id is not None:
        tenant.agent(conversation.agent_id).active.discard(conversation.conversation_id)
    conversation.agent_id = None


def _conversation(tenant: Tenant, conversation_id: str) -> Conversation | None:
    found = tenant.conversations.get(conversation_id)
    if found is None:
        log.warning(
            "fold_unknown_conversation", tenant=tenant.tenant_id, conversation_id=conversation_id
        )
    return found


@folds(ConversationQueued.TYPE)
def _queued(tenant: Tenant, _: Envelope, event: conv_events.ConversationQueued) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    _drop_offers(tenant, conversation, tuple(conversation.offered_to))
    _release_agent(tenant, conversation)
    conversation.status, conversation.position, conversation.transfer_from = (
        QUEUED,
        event.position,
        None,
    )


@folds(ConversationOffered.TYPE)
def _offered(tenant: Tenant, envelope: Envelope, event: conv_events.ConversationOffered) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    for agent_id in event.agent_ids:
        conversation.offered_to.add(agent_id)
        tenant.agent(agent_id).offers.add(conversation.conversation_id)
    conversation.offer_expires_at = envelope.occurred_at + timedelta(seconds=event.expires_in_s)
    if event.transfer_from:
        conversation.status, conversation.transfer_from = TRANSFER_PENDING, event.transfer_from
        return
    conversation.status, conversation.position = OFFERED, None
    if len(event.agent_ids) == 1:
        tenant.last_single_offer = event.agent_ids[0]


@folds(OfferWithdrawn.TYPE)
def _withdrawn(tenant: Tenant, _: Envelope, event: conv_events.OfferWithdrawn) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    if event.reason == "expired":
        conversation.expired_for.update(event.agent_ids)
    _drop_offers(tenant, conversation, event.agent_ids)


@folds(OfferDeclined.TYPE)
def _declined(tenant: Tenant, _: Envelope, event: conv_events.OfferDeclined) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    conversation.declined_by.add(event.agent_id)
    _drop_offers(tenant, conversation, (event.agent_id,))


@folds(ConversationAccepted.TYPE)
def _accepted(tenant: Tenant, _: Envelope, event: conv_events.ConversationAccepted) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    _engage(tenant, conversation, event.agent_id)


def _engage(tenant: Tenant, conversation: Conversation, agent_id: str) -> None:
    conversation.handover_from = conversation.handover_note = None
    _drop_offers(tenant, conversation, (agent_id,))
    conversation.status, conversation.agent_id = ENGAGED, agent_id
    conversation.position, conversation.transfer_from = None, None
    tenant.agent(agent_id).active.add(conversation.conversation_id)


@folds(TransferRequested.TYPE)
def _transfer_requested(tenant: Tenant, _: Envelope, event: conv_events.TransferRequested) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is not None:
        conversation.transfer_note = (
            event.note
        )  # every request sets it, so a declined transfer's note never leaks into the next


@folds(ConversationTransferred.TYPE)
def _transferred(tenant: Tenant, _: Envelope, event: conv_events.ConversationTransferred) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    note = conversation.transfer_note
    conversation.transfer_note = None
    _release_agent(tenant, conversation)
    _engage(tenant, conversation, event.to_agent_id)
    conversation.handover_from, conversation.handover_note = event.from_agent_id, note


@folds(ConversationClosed.TYPE)
def _closed(tenant: Tenant, envelope: Envelope, event: conv_events.ConversationClosed) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    _drop_offers(tenant, conversation, tuple(conversation.offered_to))
    if conversation.agent_id is not None:  # kept on the record: who handled it
        tenant.agent(conversation.agent_id).active.discard(conversation.conversation_id)
    conversation.status, conversation.position, conversation.transfer_from = CLOSED, None, None
    conversation.closed_at = envelope.occurred_at
    tenant.open_ids.discard(conversation.conversation_id)


@folds(ConversationMissed.TYPE)
def _missed(tenant: Tenant, _: Envelope, event: conv_events.ConversationMissed) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is None:
        return
    _drop_offers(tenant, conversation, tuple(conversation.offered_to))
    conversation.status, conversation.position = MISSED, None
    if event.reason == "over_limit":
        tenant.open_ids.discard(conversation.conversation_id)  # over the plan: never routed later


@folds(ConversationRated.TYPE)
def _rated(tenant: Tenant, _: Envelope, event: conv_events.ConversationRated) -> None:
    if (conversation := _conversation(tenant, event.conversation_id)) is not None:
        conversation.rated = True


# --- what the customer wrote and what agents read: unread counts on the console ---


def _customer_wrote(
    tenant: Tenant, envelope: Envelope, event: MessageSent | AttachmentSent
) -> None:
    if event.author_kind != "customer":
        return
    conversation = tenant.conversations.get(event.conversation_id)
    if conversation is not None:
        conversation.customer_messages += 1
        conversation.last_customer_message_id = event.message_id
        conversation.last_customer_at = envelope.occurred_at


folds(MessageSent.TYPE)(_customer_wrote)
folds(AttachmentSent.TYPE)(_customer_wrote)


@folds(MessageRead.TYPE)
def _read(tenant: Tenant, _: Envelope, event: MessageRead) -> None:
    """An agent read up to a message. Only a read of the customer's latest message is known
    to cover them all (the console always reads up to the latest); an earlier one leaves
    the count as it was, so unread may show too many, never too few."""
    conversation = tenant.conversations.get(event.conversation_id)
    if (
        event.reader_kind == "agent"
        and conversation is not None
        and event.message_id == conversation.last_customer_message_id
    ):
        conversation.read_by[event.reader_id] = conversation.customer_messages
