"""Admin decisions for SaaS sign-up and outbound webhook subscriptions.

Handlers have the shape of :mod:`agent_service.admin.decisions`: check the folded
state, return ``(event_type, data)`` pairs or raise :class:`relaydesk.decider.Rejected`.
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_service.admin.decisions import Emitted, check_name, existing_tenant
from agent_service.admin.state import AdminState
from contracts.commands import admin as c
from contracts.commands.admin import ConfirmSignUp, SignUp, SubscribeWebhook, UnsubscribeWebhook
from contracts.events.admin import (
    AgentCreated,
    TenantCreated,
    TenantEmailConfirmed,
    WebhookSubscribed,
    WebhookUnsubscribed,
)
from contracts.events.signup import TenantSignedUp
from contracts.registry import EVENTS
from relaydesk.decider import Rejected
from relaydesk.emails import normalize_email
from relaydesk.net_guard import RefusedTarget, url_form

OWNER_AGENT_ID = "owner"
PENDING_TTL = timedelta(hours=48)


def _expired(pending: dict[str, Any], now: datetime) -> bool:
    # An unconfirmed sign-up does not hold its name for ever (nor its link: a new one replaces it).
    return bool(pending.get("signed_up_at")) and now - pending["signed_up_at"] > PENDING_TTL


def sign_up(state: AdminState, tenant: str, cmd: c.SignUp, now: datetime | None = None) -> Emitted:
    now = now or datetime.now(UTC)
    if cmd.tenant_id != tenant:
        raise Rejected("forbidden", "a tenant signs up in its own name")
    existing = state.tenants.get(tenant)
    if existing is not None and (
        existing.exists or (existing.pending and not _expired(existing.pending, now))
    ):
        raise Rejected("already_exists", f"tenant {tenant!r} is taken")
    check_name(cmd.name)  # as tenant.create and agent.create check theirs
    check_name(cmd.owner_name)
    data = cmd.model_dump()
    data["owner_email"] = normalize_email(cmd.owner_email)
    return [(TenantSignedUp.TYPE, data)]


def confirm_sign_up(
    state: AdminState, tenant: str, cmd: c.ConfirmSignUp, now: datetime | None = None
) -> Emitted:
    t = state.tenants.get(tenant)
    pending = t.pending if t is not None else None
    if (
        pending is None
        or pending["token_hash"] != cmd.token_hash
        or _expired(pending, now or datetime.now(UTC))
    ):
        raise Rejected("invalid_token", "unknown or already used confirmation link")
    email = pending["owner_email"]
    owner = {
        "agent_id": OWNER_AGENT_ID,
        "email": email,
        "name": pending["owner_name"],
        "role": "owner",
        "groups": [],
        "max_chats": 5,
        "password_hash": pending["password_hash"],
    }
    return [
        (
            TenantCreated.TYPE,
            {"tenant_id": tenant, "name": pending["name"], "mode": "saas", "owner_email": email},
        ),
        (TenantEmailConfirmed.TYPE, {"tenant_id": tenant, "email": email}),
        (AgentCreated.TYPE, owner),
    ]


def _check_url(url: str) -> None:
    # The address rules (public addresses only, the operator's allowed networks, https in SaaS
    # mode) need the operator's settings and a DNS lookup: the service checks them before
    # deciding (AdminService, relaydesk/net_guard.py); the form holds whatever they say.
    try:
        url_form(url)
    except RefusedTarget as exc:
        raise Rejected("invalid_payload", f"webhook URL refused: {exc}") from None


def subscribe_webhook(state: AdminState, tenant: str, cmd: c.SubscribeWebhook) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.subscription_id in t.webhooks:
        raise Rejected("already_exists", "subscription id taken")
    _check_url(cmd.url)
    unknown = [name for name in cmd.event_types if name != "*" and name not in EVENTS]
    if unknown:
        raise Rejected("invalid_payload", f"unknown event type {unknown[0]!r}")
    return [
        (
            WebhookSubscribed.TYPE,
            {
                "subscription_id": cmd.subscription_id,
                "url": cmd.url,
                "event_types": list(cmd.event_types),
            },
        )
    ]


def unsubscribe_webhook(state: AdminState, tenant: str, cmd: c.UnsubscribeWebhook) -> Emitted:
    if cmd.subscription_id not in existing_tenant(state, tenant).webhooks:
        raise Rejected("not_found", "no such subscription")
    return [(WebhookUnsubscribed.TYPE, {"subscription_id": cmd.subscription_id})]


HANDLERS: dict[str, Callable[[AdminState, str, Any], Emitted]] = {
    SignUp.TYPE: sign_up,
    ConfirmSignUp.TYPE: confirm_sign_up,
    SubscribeWebhook.TYPE: subscribe_webhook,
    UnsubscribeWebhook.TYPE: unsubscribe_webhook,
}
SAAS_ONLY = frozenset({SignUp.TYPE, ConfirmSignUp.TYPE})
CLOCKED = frozenset({SignUp.TYPE, ConfirmSignUp.TYPE})  # read the time: pending sign-ups expire
