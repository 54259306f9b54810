"""A redelivered command is answered from its recorded reply, for every declared decision type.

For each service and each event type the registry says the service decides (``DECIDED_BY``),
plus the service's ``command.rejected``: a command whose answer on the log holds that type
is answered from the record when it comes again, and neither prepared nor decided again.
"""

from typing import Any

import pytest

from contracts import EVENTS, Envelope
from contracts.decisions import decided_by, decision_types
from tests.deciders.harness import BOX, DESKS, Desk, agent, command, event

# What each service is asked again (any of its commands does: only its id is looked up).
REDELIVERED = {
    "agent": lambda: command(
        "conversation.close",
        {"conversation_id": "c1", "closed_by": "agent"},
        actor=agent("a1"),
    ),
    "admin": lambda: command("agent.remove", {"agent_id": "a1"}),
    "billing": lambda: command("billing.close_period", {"period": "2026-02"}),
    "connectors": lambda: command("connector.remove", {"connector_id": "tg1"}),
}

# A valid payload of every decision type, as the log would hold it. A new decision type
# needs one here: the test below fails until it has one.
SAMPLES: dict[str, dict[str, Any]] = {
    "conversation.requested": {"conversation_id": "c1", "visitor": {"id": "v1"}},
    "conversation.queued": {"conversation_id": "c1", "position": 1},
    "conversation.offered": {"conversation_id": "c1", "agent_ids": ["a1"]},
    "conversation.offer_withdrawn": {
        "conversation_id": "c1",
        "agent_ids": ["a1"],
        "reason": "expired",
    },
    "conversation.offer_declined": {"conversation_id": "c1", "agent_id": "a1"},
    "conversation.accepted": {"conversation_id": "c1", "agent_id": "a1"},
    "conversation.transfer_requested": {"conversation_id": "c1", "from_agent_id": "a1"},
    "conversation.transfer_returned": {
        "conversation_id": "c1",
        "from_agent_id": "a1",
        "reason": "declined",
        "by_agent_id": "a2",
    },
    "conversation.transferred": {
        "conversation_id": "c1",
        "from_agent_id": "a1",
        "to_agent_id": "a2",
    },
    "conversation.closed": {"conversation_id": "c1", "closed_by": "agent"},
    "conversation.missed": {"conversation_id": "c1"},
    "conversation.rated": {"conversation_id": "c1", "score": 5},
    "conversation.agent_disconnected": {"conversation_id": "c1", "agent_id": "a1", "grace_s": 30},
    "conversation.agent_reconnected": {"conversation_id": "c1", "agent_id": "a1"},
    "message.system": {
        "conversation_id": "c1",
        "message_id": "m1",
        "kind": "closed",
        "text": "The conversation was closed by the agent",
    },
    "agent.status_changed": {"agent_id": "a1", "status": "online"},
    "agent.disconnected": {"agent_id": "a1", "grace_s": 30},
    "tenant.created": {"tenant_id": "acme", "name": "Acme", "mode": "saas"},
    "tenant.email_confirmed": {"tenant_id": "acme", "email": "o@acme.test"},
    "tenant.signed_up": {
        "tenant_id": "acme",
        "name": "Acme",
        "owner_email": "o@acme.test",
        "owner_name": "O",
        "password_hash": "h",
        "token_hash": "t",
    },
    "tenant.settings_changed": {"before": {}, "after": {"timezone": "UTC"}},
    "agent.created": {"agent_id": "a1", "email": "a1@acme.test", "name": "A1"},
    "agent.updated": {"agent_id": "a1", "before": {"name": "A"}, "after": {"name": "B"}},
    "agent.removed": {"agent_id": "a1"},
    "permission_group.created": {"group_id": "g1", "name": "G1"},
    "permission_group.updated": {"group_id": "g1", "before": {}, "after": {"name": "G"}},
    "permission_group.deleted": {"group_id": "g1"},
    "canned_response.created": {"canned_id": "k1", "shortcut": "hi", "text": "Hi"},
    "canned_response.updated": {"canned_id": "k1", "before": {}, "after": {"text": "Hey"}},
    "canned_response.deleted": {"canned_id": "k1"},
    "webhook.subscribed": {
        "subscription_id": "s1",
        "url": "https://hooks.acme.test/in",
        "event_types": ["*"],
    },
    "webhook.unsubscribed": {"subscription_id": "s1"},
    "webhook.paused": {"subscription_id": "s1"},
    "webhook.resumed": {"subscription_id": "s1", "pauses": ["p1"]},
    "connector.paused": {"connector_id": "tg1"},
    "connector.resumed": {"connector_id": "tg1", "pauses": ["p1"]},
    "billing.subscription_changed": {"plan": "team", "effective": "2026-03-01"},
    "billing.period_closed": {"period": "2026-02"},
    "billing.payment_recorded": {"invoice_id": "inv-1", "amount_cents": 100},
    "connector.configured": {
        "connector_id": "tg1",
        "platform": "telegram",
        "sealed_config": BOX.seal({"bot_token": "1:a"}),
    },
    "connector.removed": {"connector_id": "tg1"},
}

CASES = [
    pytest.param(service, type_name, id=f"{service}-{type_name}")
    for service in sorted(DESKS)
    for type_name in [*sorted(decision_types(service)), "command.rejected"]
]


def sample(type_name: str, redelivered: Envelope) -> dict[str, Any]:
    if type_name == "command.rejected":
        return {
            "command_id": redelivered.id,
            "command_type": redelivered.type,
            "reason": "not_found",
            "detail": "recorded before the restart",
        }
    if type_name not in SAMPLES:
        pytest.fail(f"{type_name} is a decision type: give it a sample payload in SAMPLES")
    return SAMPLES[type_name]


def never_again(desk: Desk) -> list[str]:
    """Make deciding or preparing fail the test; returns what was attempted."""
    attempted: list[str] = []

    def decide(_: Any, payload: Any) -> None:
        attempted.append(f"decide {payload.TYPE}")

    async def prepare(command: Envelope, _: Any) -> object:
        attempted.append(f"prepare {command.type}")
        return None

    desk.decider.handlers = {name: decide for name in desk.decider.handlers}
    desk.decider.prepare = prepare  # type: ignore[method-assign]
    return attempted


def test_every_service_that_declares_decisions_is_covered() -> None:
    declaring = {decided_by(name) for name in EVENTS.names()} - {None}
    assert declaring == set(DESKS) == set(REDELIVERED)


@pytest.mark.parametrize(("service", "type_name"), CASES)
async def test_a_redelivered_command_is_answered_from_its_recorded_reply(
    service: str, type_name: str
) -> None:
    desk = DESKS[service]()
    redelivered = REDELIVERED[service]()
    answer = event(type_name, sample(type_name, redelivered), caused_by=redelivered.id)
    desk.given(answer)  # on the log before a restart: folded like any event
    attempted = never_again(desk)
    reply = await desk.when(redelivered)
    assert attempted == [] and desk.published.events == []
    assert reply.event_ids == (answer.id,)
    assert reply.ok is (type_name != "command.rejected")
    if not reply.ok:
        assert (reply.code, reply.message) == ("not_found", "recorded before the restart")


@pytest.mark.parametrize("service", sorted(DESKS))
async def test_another_services_answer_does_not_answer_our_command(service: str) -> None:
    """Only our own declared types (and rejections of our commands) count as our answer."""
    desk = DESKS[service]()
    redelivered = REDELIVERED[service]()
    others = sorted(name for name in SAMPLES if decided_by(name) not in (service, None))
    foreign_rejection = {
        "command_id": redelivered.id,
        "command_type": "conversation.accept" if service != "agent" else "agent.remove",
        "reason": "not_found",
    }
    desk.given(
        *(event(name, SAMPLES[name], caused_by=redelivered.id) for name in others[:3]),
        event("command.rejected", foreign_rejection, caused_by=redelivered.id),
    )
    assert redelivered.id not in desk.decider.replies
