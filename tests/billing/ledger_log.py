"""A month of one SaaS account on the log, for billing's snapshot tests: plan, seats,
connectors, conversations, messages (one published twice), a close, its invoice and a
payment, and the answers to billing's commands."""

from datetime import UTC, datetime

from contracts import Actor, Envelope
from tests.deciders.harness import TENANT, command, event

SIGNED_UP = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
IN_MONTH = datetime(2026, 1, 20, 9, 0, tzinfo=UTC)
NEXT_MONTH = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)


def message(n: int, at: datetime = IN_MONTH) -> Envelope:
    data = {
        "conversation_id": f"c{n % 3}",
        "message_id": f"m{n}",
        "body": f"hello {n}",
        "author_kind": "customer",
        "author_id": "v1",
    }
    return event(
        "message.sent", data, at=at, stream=f"conv:c{n % 3}", actor=Actor(kind="customer", id="v1")
    )


def conversation(n: int, at: datetime = IN_MONTH) -> Envelope:
    data = {"conversation_id": f"c{n}", "visitor": {"id": f"v{n}"}}
    return event("conversation.requested", data, at=at, stream=f"conv:c{n}")


def opening() -> list[Envelope]:
    """The account's first days: opened on Team, two agents (one online), a connector."""
    created = {"tenant_id": TENANT, "name": "Acme", "mode": "saas", "plan": "team"}
    return [
        event("tenant.created", created, at=SIGNED_UP),
        event("agent.created", {"agent_id": "a1", "email": "a1@x.test", "name": "Ann"}),
        event("agent.created", {"agent_id": "a2", "email": "a2@x.test", "name": "Bob"}),
        event("agent.status_changed", {"agent_id": "a1", "status": "online"}, at=IN_MONTH),
        event(
            "connector.configured",
            {"connector_id": "tg", "platform": "telegram", "sealed_config": "sealed"},
        ),
        *(conversation(n) for n in range(3)),
        *(message(n) for n in range(5)),
    ]


def change_plan(plan: str = "business", effective: str | None = None) -> Envelope:
    """Billing's command (refused when ``effective`` has passed: an answer all the same)."""
    data = {"plan": plan} if effective is None else {"plan": plan, "effective": effective}
    return command("billing.change_plan", data)


def close_january() -> Envelope:
    return event("billing.period_closed", {"period": "2026-01"}, stream=f"billing:{TENANT}")


def later(first_copy: Envelope) -> list[Envelope]:
    """What follows: a publisher's second copy of ``first_copy``, more usage in February,
    an agent removed, the connector removed."""
    return [
        first_copy,
        *(message(n, at=NEXT_MONTH) for n in range(10, 14)),
        conversation(7, at=NEXT_MONTH),
        event("agent.status_changed", {"agent_id": "a2", "status": "online"}, at=NEXT_MONTH),
        event("agent.removed", {"agent_id": "a1"}, at=NEXT_MONTH),
        event("connector.removed", {"connector_id": "tg"}, at=NEXT_MONTH),
    ]
