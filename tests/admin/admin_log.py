"""One SaaS account's administration on the log, for administration's snapshot tests:
settings, agents, a group, canned responses and their uses (one message published twice), a
pending sign-up, a connector paused, webhook subscriptions, chat events it has no use for,
and administration's own commands (one refused)."""

from contracts import Actor, Envelope
from tests.deciders.harness import TENANT, command, event


def used(n: int, canned_id: str = "hi") -> Envelope:
    """An agent's message that used a canned response (its ``uses`` count it)."""
    data = {
        "conversation_id": "c1",
        "message_id": f"m{n}",
        "body": "Hello",
        "author_kind": "agent",
        "author_id": "a1",
        "canned_response_id": canned_id,
    }
    return event("message.sent", data, stream="conv:c1", actor=Actor(kind="agent", id="a1"))


def chat(n: int) -> Envelope:
    """A chat message: on the log, nothing administration keeps."""
    data = {"conversation_id": "c1", "message_id": f"v{n}", "body": "hi", "author_kind": "customer"}
    return event("message.sent", data, stream="conv:c1", actor=Actor(kind="customer", id="v1"))


def opening() -> list[Envelope]:
    created = {"tenant_id": TENANT, "name": "Acme", "mode": "saas", "plan": "team"}
    sign_up = {
        "tenant_id": "globex",
        "name": "Globex",
        "owner_email": "o@globex.test",
        "owner_name": "O",
        "password_hash": "h",
        "token_hash": "t",
    }
    hook = {
        "subscription_id": "s1",
        "url": "https://h.acme.test/in",
        "event_types": ["conversation.closed"],
    }
    return [
        event("tenant.created", created),
        event("tenant.settings_changed", {"after": {"timezone": "Europe/Berlin"}}),
        event("agent.created", {"agent_id": "a1", "email": "A1@acme.test", "name": "Ann"}),
        event("agent.created", {"agent_id": "a2", "email": "a2@acme.test", "name": "Bob"}),
        event("permission_group.created", {"group_id": "g1", "name": "Sales", "permissions": []}),
        event("agent.updated", {"agent_id": "a1", "after": {"groups": ["g1"], "role": "owner"}}),
        event("canned_response.created", {"canned_id": "hi", "shortcut": "hi", "text": "Hello"}),
        event("tenant.signed_up", sign_up, tenant="globex"),
        event("webhook.subscribed", hook, stream="subscription:s1"),
        event(
            "connector.configured",
            {"connector_id": "tg", "platform": "telegram", "sealed_config": "sealed"},
        ),
        event("connector.paused", {"connector_id": "tg"}),
        *(chat(n) for n in range(3)),
        used(1),
    ]


def subscribe() -> Envelope:
    """Administration's command: a subscription whose worker starts at its own position."""
    data = {
        "subscription_id": "s2",
        "url": "https://h.acme.test/two",
        "event_types": ["conversation.closed"],
    }
    return command("webhook.subscribe", data)


def create_canned() -> Envelope:
    """Administration's command, decided without starting a webhook worker."""
    return command("canned_response.create", {"canned_id": "bye", "shortcut": "bye", "text": "Bye"})


def refused() -> Envelope:
    """Administration's command, refused: an answer all the same."""
    return command("webhook.unsubscribe", {"subscription_id": "nope"})


def later(first_copy: Envelope) -> list[Envelope]:
    """What follows: a publisher's second copy of ``first_copy``, another use, an agent
    removed, a canned response changed, chat."""
    return [
        first_copy,
        used(2),
        event("agent.removed", {"agent_id": "a2"}),
        event("canned_response.updated", {"canned_id": "hi", "after": {"text": "Hi!"}}),
        *(chat(n) for n in range(10, 13)),
    ]
