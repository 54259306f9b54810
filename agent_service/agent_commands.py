"""Deciding agent commands: status changes, lost connections and the end of their grace period."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from agent_service.conversation_commands import (
    EXPIRY_TOLERANCE,
    acting_for_someone_else,
    agent_name,
    from_our_timer,
)
from agent_service.decision import SYSTEM_ACTOR, Decision
from agent_service.state import QUEUED
from contracts.commands import conversation as commands
from contracts.commands import routing as routing_commands
from contracts.commands.conversation import ReportAgentConnectionLost, SetAgentStatus
from contracts.commands.routing import ExpireAgentDisconnect, ReleaseRemovedAgent
from contracts.events.admin import AgentStatusChanged
from contracts.events.conversation import AgentDisconnected, AgentReconnected
from contracts.events.routing import AgentConnectionLost

Handler = Callable[[Decision, Any], None]


def _withdraw_offers_of(d: Decision, agent_id: str) -> None:
    """Take back every offer standing for the agent; re-route chats nobody else holds."""
    for conversation_id in sorted(d.tenant.agent(agent_id).offers):
        conversation = d.tenant.conversations[conversation_id]
        d.withdraw(conversation, (agent_id,), "agent_offline", actor=SYSTEM_ACTOR)
        if conversation.status == QUEUED:
            d.route(conversation, "requeued", actor=SYSTEM_ACTOR)


def set_status(d: Decision, cmd: commands.SetAgentStatus) -> None:
    if acting_for_someone_else(d, cmd.agent_id):
        return d.reject("forbidden", "agents set their own status only")
    agent = d.tenant.agents.get(cmd.agent_id)
    was_reported_lost = agent is not None and agent.disconnected_at is not None
    data = cmd.model_dump(mode="json", exclude_none=True)
    d.emit(AgentStatusChanged.TYPE, data, stream=f"agent:{cmd.agent_id}")  # folds: ends the loss
    if was_reported_lost and cmd.status != "offline":
        _tell_customers_they_are_back(d, cmd.agent_id)
    if cmd.status == "online":
        d.drain()
        d.join_standing_offers(cmd.agent_id)
    else:
        _withdraw_offers_of(d, cmd.agent_id)
    d.refresh_positions()
    return None


def _tell_customers_they_are_back(d: Decision, agent_id: str) -> None:
    """An agent whose lost connection their customers were told of sets a status again (their
    console does on every connect): each chat they hold hears they are back, or its widget
    would say "lost connection" until they next wrote."""
    name = agent_name(d, agent_id)
    for conversation_id in sorted(d.tenant.agent(agent_id).active):
        d.emit(
            AgentReconnected.TYPE,
            {"conversation_id": conversation_id, "agent_id": agent_id, "agent_name": name},
        )
        d.note(conversation_id, "notice", f"{name} is back.")


def connection_lost(d: Decision, cmd: commands.ReportAgentConnectionLost) -> None:
    """The agent's last socket closed: tell their customers, start the grace period."""
    if acting_for_someone_else(d, cmd.agent_id):
        return d.reject("forbidden", "only the gateway or the agent reports a lost connection")
    agent = d.tenant.agents.get(cmd.agent_id)
    if agent is None or agent.disconnected_at is not None or agent.status == "offline":
        return None
    d.emit(
        AgentConnectionLost.TYPE,
        {"agent_id": cmd.agent_id, "grace_s": d.grace_s},
        stream=f"agent:{cmd.agent_id}",
        actor=SYSTEM_ACTOR,
    )
    for conversation_id in sorted(agent.active):
        d.emit(
            AgentDisconnected.TYPE,
            {"conversation_id": conversation_id, "agent_id": cmd.agent_id, "grace_s": d.grace_s},
            actor=SYSTEM_ACTOR,
        )
        d.note(conversation_id, "notice", "Your agent lost their connection. Please hold on.")
    # Offers (a transfer's too) stand through the grace, like the chats: a reload is a lost
    # connection, and the reloaded console must find its requests again. The agent gets no
    # new offers meanwhile (not available while disconnected); the grace's end takes them back.
    return None


def expire_disconnect(d: Decision, cmd: routing_commands.ExpireAgentDisconnect) -> None:
    """Timer: the agent did not come back in time; their chats go back to the queue."""
    if not from_our_timer(d):
        return
    agent = d.tenant.agents.get(cmd.agent_id)
    if agent is None or agent.disconnected_at is None:
        return  # they came back (or never left)
    if d.now + EXPIRY_TOLERANCE < agent.disconnected_at + timedelta(seconds=agent.grace_s):
        return
    d.emit(
        AgentStatusChanged.TYPE,
        {"agent_id": cmd.agent_id, "status": "offline"},
        stream=f"agent:{cmd.agent_id}",
        actor=SYSTEM_ACTOR,
    )
    _hand_back(d, cmd.agent_id, "agent_disconnected")


def release_removed(d: Decision, cmd: routing_commands.ReleaseRemovedAgent) -> None:
    """Timer, on the agent's removal: their chats and offers go to someone else."""
    if not from_our_timer(d):
        return
    agent = d.tenant.agents.get(cmd.agent_id)
    if agent is None or not agent.removed or not (agent.active or agent.offers):
        return  # not removed, or nothing left to hand back (a resent command)
    _hand_back(d, cmd.agent_id, "requeued")


def _hand_back(d: Decision, agent_id: str, reason: str) -> None:
    """The agent's offers are taken back and their chats queued and routed again."""
    chats = [d.tenant.conversations[c] for c in sorted(d.tenant.agent(agent_id).active)]
    name = agent_name(d, agent_id)
    _withdraw_offers_of(d, agent_id)
    for conversation in chats:
        d.queue(conversation, reason, actor=SYSTEM_ACTOR)
        d.note(conversation.conversation_id, "left", f"{name} left the chat")
        d.note(conversation.conversation_id, "notice", "We are finding another agent for you.")
    for conversation in sorted(chats, key=lambda c: c.seq):
        d.route(conversation, reason, actor=SYSTEM_ACTOR)
    d.refresh_positions()


HANDLERS: dict[str, Handler] = {
    SetAgentStatus.TYPE: set_status,
    ReportAgentConnectionLost.TYPE: connection_lost,
    ExpireAgentDisconnect.TYPE: expire_disconnect,
    ReleaseRemovedAgent.TYPE: release_removed,
}
