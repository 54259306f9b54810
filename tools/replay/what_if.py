"""What-if routing: a recorded range of one tenant's log decided again under other settings.

Pure and deterministic: :func:`simulate` takes the tenant's events (log order, from its
beginning to the end of the range), the range and the :class:`Changes`, and returns what
routing did in reality and what it would have done (two :class:`Outcome`, one measure).

How the simulation runs (docs/audit.md "What-if routing"):

1. The events before ``since`` are folded into the routing state, as routing had it when
   the range began (agents, groups, settings, who was online, chats in progress); the
   changes are applied on top, and again after every step, so they hold throughout.
2. The range's inputs are replayed at their recorded times, through the routing decider
   itself (agent_service's handlers, the live service's rules): customers' requests,
   agents' status changes and lost connections as commands; administrative changes and
   customers' messages folded as they were logged; an agent's sign of life ends her
   disconnection as it did in reality.
3. Agents and customers act as :mod:`tools.replay.what_if_people` says they did.
4. Timers (offer expiry at the simulated offer timeout, the disconnect grace) fire at
   their times. Simulated time advances from one due step to the next, inputs before
   timers at the same instant, each in the order it was scheduled; nothing after
   ``until`` runs.

Transfers are not replayed: a conversation stays with the agent who took it.
"""

import copy
import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from agent_service.decider import HANDLERS
from agent_service.decision import SYSTEM_ACTOR, Decision
from agent_service.fold import NOT_A_RETURN, apply
from agent_service.state import CLOSED, RoutingState, Tenant
from contracts.commands.conversation import (
    AcceptConversation,
    CloseConversation,
    DeclineConversation,
    ExpireOffers,
    ReportAgentConnectionLost,
    RequestConversation,
    SetAgentStatus,
)
from contracts.commands.routing import ExpireAgentDisconnect
from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events import admin, billing
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationClosed,
    ConversationOffered,
    ConversationRequested,
)
from contracts.events.message import AttachmentSent, MessageSent
from contracts.events.routing import AgentConnectionLost
from contracts.ids import derive_event_id
from contracts.plans import PlanCatalogue
from contracts.registry import parse_command_data
from relaydesk.decider import Rejected
from tools.replay.routing_outcome import Outcome, measure
from tools.replay.what_if_changes import Changes
from tools.replay.what_if_people import ACCEPT, DECLINE, IGNORE, People

# Logged as they were: who exists, their groups and limits, the settings, the plan.
FOLDED_AS_LOGGED = frozenset(
    {
        admin.TenantCreated.TYPE,
        admin.TenantSettingsChanged.TYPE,
        admin.AgentCreated.TYPE,
        admin.AgentUpdated.TYPE,
        admin.AgentRemoved.TYPE,
        admin.PermissionGroupCreated.TYPE,
        admin.PermissionGroupUpdated.TYPE,
        admin.PermissionGroupDeleted.TYPE,
        billing.SubscriptionChanged.TYPE,
    }
)
CUSTOMER_WRITES = frozenset({MessageSent.TYPE, AttachmentSent.TYPE})
WHAT_IF = "what-if"  # seeds the simulated commands' ids


@dataclass(frozen=True)
class Comparison:
    actual: Outcome
    simulated: Outcome
    log: list[Envelope]  # the simulated range of the log


@dataclass(frozen=True)
class Deployment:
    """The service-wide defaults the live decider runs with (relaydesk.settings)."""

    offer_timeout_s: int = 60
    grace_s: int = 30
    plans: PlanCatalogue = field(default_factory=PlanCatalogue.load)


def split(
    events: Sequence[Envelope], since: datetime | None, until: datetime | None
) -> tuple[list[Envelope], list[Envelope]]:
    """The events before the range, and the range's (both in log order)."""
    before = [e for e in events if since is not None and e.occurred_at < since]
    inside = [
        e
        for e in events
        if (since is None or e.occurred_at >= since) and (until is None or e.occurred_at <= until)
    ]
    return before, inside


def simulate(
    tenant_id: str,
    events: Sequence[Envelope],
    since: datetime | None,
    until: datetime | None,
    changes: Changes,
    deployment: Deployment | None = None,
) -> Comparison:
    """Reality and the what-if over ``[since, until]`` of ``tenant_id``'s ``events``.

    Raises:
        WhatIfRefused: a change names an agent or group the log does not know.
    """
    mine = [e for e in events if e.tenant == tenant_id]
    before, inside = split(mine, since, until)
    start = RoutingState()
    for event in before:
        apply(start, event)
    known = copy.deepcopy(start)
    for event in inside:
        apply(known, event)
    tenant = known.tenant(tenant_id)
    changes.check_names(tenant.agents, tenant.groups)
    end = until or max((e.occurred_at for e in inside), default=None)
    people = People.recorded(inside)
    log = _Simulation(tenant_id, start, changes, deployment or Deployment(), people).replay(
        inside, end
    )
    return Comparison(measure(start, tenant_id, inside), measure(start, tenant_id, log), log)


def _fields_of(fields: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """The command an event recorded: its fields that the command has, unset ones left out."""
    return {k: v for k, v in data.items() if k in fields and v is not None}


@dataclass(order=True)
class _Due:
    at: datetime
    seq: int
    step: Callable[[], None] = field(compare=False)


class _Simulation:
    def __init__(
        self,
        tenant_id: str,
        start: RoutingState,
        changes: Changes,
        deployment: Deployment,
        people: People,
    ) -> None:
        self.tenant_id = tenant_id
        self.state = copy.deepcopy(start)
        self.changes = changes
        self.deployment = deployment
        self.people = people
        self.log: list[Envelope] = []
        self._due: list[_Due] = []
        self._seq = 0
        self._commands = 0
        self._taken_at: dict[str, datetime] = {}  # conversation -> simulated first accept
        self.now = datetime.min.replace(tzinfo=UTC)  # the simulated time: the due step's
        changes.apply(self.tenant)

    @property
    def tenant(self) -> Tenant:
        return self.state.tenant(self.tenant_id)

    # --- the schedule ---

    def at(self, when: datetime, step: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._due, _Due(when, self._seq, step))

    def replay(self, inside: Sequence[Envelope], end: datetime | None) -> list[Envelope]:
        for event in inside:  # inputs first: scheduled before any timer they cause
            self._input(event)
        for act in self.people.unprompted:
            self.at(act.at, partial(self._act, act.kind, act.conversation_id, act.agent_id))
        self._standing_timers()
        while self._due and (end is None or self._due[0].at <= end):
            due = heapq.heappop(self._due)
            self.now = due.at
            due.step()
            self.changes.apply(self.tenant)
        return self.log

    def _input(self, event: Envelope) -> None:
        at, data, actor = event.occurred_at, event.data, event.actor
        if event.type == ConversationRequested.TYPE:
            command = _fields_of(RequestConversation.model_fields, data)
            self.at(at, partial(self.decide, RequestConversation.TYPE, command, actor))
        elif event.type == admin.AgentStatusChanged.TYPE and actor.kind != ActorKind.system:
            command = _fields_of(SetAgentStatus.model_fields, data)
            self.at(at, partial(self.decide, SetAgentStatus.TYPE, command, actor))
        elif event.type == AgentConnectionLost.TYPE:
            command = {"agent_id": data["agent_id"]}
            self.at(at, partial(self.decide, ReportAgentConnectionLost.TYPE, command, SYSTEM_ACTOR))
        elif event.type in FOLDED_AS_LOGGED or (
            event.type in CUSTOMER_WRITES and data.get("author_kind") == "customer"
        ):
            self.at(at, partial(self._fold, event))
        elif event.type == ConversationClosed.TYPE:
            self._input_close(event.data["conversation_id"])
        if actor.kind == ActorKind.agent and event.type not in NOT_A_RETURN:
            self.at(at, partial(self._seen, actor.id))

    def _input_close(self, conversation_id: str) -> None:
        ending = self.people.endings[conversation_id]
        if ending.handled_for is None:  # nobody took it in the range: it ends as recorded
            self.at(ending.at, partial(self._close, conversation_id, ending.closed_by))
        else:  # the customer leaves unanswered, unless taken by then (closed later instead)
            self.at(ending.at, partial(self._leave, conversation_id))

    def _standing_timers(self) -> None:
        """Offers and grace periods standing when the range begins expire at their times."""
        for conversation in self.tenant.conversations.values():
            if conversation.offered_to and conversation.offer_expires_at is not None:
                self._expiry(conversation.conversation_id, conversation.offer_expires_at)
        for agent in self.tenant.agents.values():
            if agent.disconnected_at is not None:
                due = agent.disconnected_at + timedelta(seconds=agent.grace_s)
                self._grace(agent.agent_id, due)

    # --- steps ---

    def decide(self, command_type: str, data: dict[str, Any], actor: Actor) -> None:
        """One command through routing's own handler, at the simulated time."""
        self._commands += 1
        command = Envelope(
            id=derive_event_id(self.tenant_id, WHAT_IF, str(self._commands)),
            type=command_type,
            tenant=self.tenant_id,
            stream="tenant",
            actor=actor,
            occurred_at=self.now,
            data=data,
        )
        payload = parse_command_data(command)
        decision = Decision(
            self.state,
            command,
            now=self.now,
            offer_timeout_s=self.deployment.offer_timeout_s,
            grace_s=self.deployment.grace_s,
            plans=self.deployment.plans,
        )
        try:
            HANDLERS[command_type](decision, payload)
        except Rejected as no:
            decision.reject(no.code, no.message)
        self.log.extend(decision.events)
        for event in decision.events:
            self._follow(event)

    def _follow(self, event: Envelope) -> None:
        """Schedule what a simulated event calls for: timers, reactions, the chat's end."""
        data = event.data
        if event.type == ConversationOffered.TYPE:
            conversation_id = data["conversation_id"]
            expires = event.occurred_at + timedelta(seconds=data["expires_in_s"])
            self._expiry(conversation_id, expires)
            for agent_id in data["agent_ids"]:
                reaction = self.people.reaction(conversation_id, agent_id)
                if reaction.kind != IGNORE:
                    self.at(
                        event.occurred_at + reaction.delay,
                        partial(self._act, reaction.kind, conversation_id, agent_id, expires),
                    )
        elif event.type == ConversationAccepted.TYPE:
            conversation_id = data["conversation_id"]
            ending = self.people.endings.get(conversation_id)
            self._taken_at.setdefault(conversation_id, event.occurred_at)
            if ending is not None and ending.handled_for is not None:
                self.at(
                    event.occurred_at + ending.handled_for,
                    partial(self._close, conversation_id, ending.closed_by),
                )
        elif event.type == AgentConnectionLost.TYPE:
            self._grace(data["agent_id"], event.occurred_at + timedelta(seconds=data["grace_s"]))

    def _expiry(self, conversation_id: str, due: datetime) -> None:
        command = {"conversation_id": conversation_id}
        self.at(due, partial(self.decide, ExpireOffers.TYPE, command, SYSTEM_ACTOR))

    def _grace(self, agent_id: str, due: datetime) -> None:
        command = {"agent_id": agent_id}
        self.at(due, partial(self.decide, ExpireAgentDisconnect.TYPE, command, SYSTEM_ACTOR))

    def _act(
        self, kind: str, conversation_id: str, agent_id: str, offer: datetime | None = None
    ) -> None:
        """An agent's accept or decline; a reaction to an offer (``offer``: its expiry) is
        void once that offer is gone, even if another was made since (she reacts to what
        she saw, and a slow click on a withdrawn card does nothing)."""
        if offer is not None:
            conversation = self.tenant.conversations.get(conversation_id)
            if (
                conversation is None
                or agent_id not in conversation.offered_to
                or conversation.offer_expires_at != offer
            ):
                return
        command_type = AcceptConversation.TYPE if kind == ACCEPT else DeclineConversation.TYPE
        assert kind in (ACCEPT, DECLINE)
        command = {"conversation_id": conversation_id, "agent_id": agent_id}
        self.decide(command_type, command, Actor(kind=ActorKind.agent, id=agent_id))

    def _close(self, conversation_id: str, closed_by: str) -> None:
        conversation = self.tenant.conversations.get(conversation_id)
        if conversation is None or conversation.status == CLOSED:
            return
        command = {"conversation_id": conversation_id, "closed_by": closed_by}
        self.decide(CloseConversation.TYPE, command, SYSTEM_ACTOR)

    def _leave(self, conversation_id: str) -> None:
        """At the recorded close of a chat served in reality: gone, if nobody took it yet."""
        if conversation_id not in self._taken_at:
            self._close(conversation_id, "customer")

    def _fold(self, event: Envelope) -> None:
        apply(self.state, event)
        self.log.append(event)

    def _seen(self, agent_id: str) -> None:
        agent = self.tenant.agents.get(agent_id)
        if agent is not None:
            agent.disconnected_at = None
