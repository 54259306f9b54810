"""Pausing and resuming webhook subscriptions and connectors (pure handlers).

A pause is an event whose id names it; a resume ends the pauses in force when it is decided
(by their ids). So a resume carried over by ``relaydesk import`` (it names the source's
pauses) never ends the pause the import put on what it created (docs/audit.md, "Export and
import"). Who may: ``manage_settings`` for webhooks, ``manage_connectors`` for connectors
(``grants.py``, as the gateway's routes).
"""

from collections.abc import Callable
from typing import Any

from agent_service.admin.decisions import Emitted, existing_tenant
from agent_service.admin.state import AdminState
from contracts.commands import admin as c
from contracts.events.admin import WebhookPaused, WebhookResumed
from contracts.events.connector import ConnectorPaused, ConnectorResumed
from relaydesk.decider import Rejected


def pause_webhook(state: AdminState, tenant: str, cmd: c.PauseWebhook) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.subscription_id not in t.webhooks:
        raise Rejected("not_found", "no such subscription")
    if t.webhook_pauses.get(cmd.subscription_id):
        raise Rejected("conflict", "the subscription is paused already")
    return [(WebhookPaused.TYPE, {"subscription_id": cmd.subscription_id, "reason": "admin"})]


def resume_webhook(state: AdminState, tenant: str, cmd: c.ResumeWebhook) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.subscription_id not in t.webhooks:
        raise Rejected("not_found", "no such subscription")
    pauses = t.webhook_pauses.get(cmd.subscription_id)
    if not pauses:
        raise Rejected("conflict", "the subscription is not paused")
    return [(WebhookResumed.TYPE, {"subscription_id": cmd.subscription_id, "pauses": pauses})]


def pause_connector(state: AdminState, tenant: str, cmd: c.PauseConnector) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.connector_id not in t.connectors:
        raise Rejected("not_found", "no such connector")
    if t.connector_pauses.get(cmd.connector_id):
        raise Rejected("conflict", "the connector is paused already")
    return [(ConnectorPaused.TYPE, {"connector_id": cmd.connector_id, "reason": "admin"})]


def resume_connector(state: AdminState, tenant: str, cmd: c.ResumeConnector) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.connector_id not in t.connectors:
        raise Rejected("not_found", "no such connector")
    pauses = t.connector_pauses.get(cmd.connector_id)
    if not pauses:
        raise Rejected("conflict", "the connector is not paused")
    return [(ConnectorResumed.TYPE, {"connector_id": cmd.connector_id, "pauses": pauses})]


HANDLERS: dict[str, Callable[[AdminState, str, Any], Emitted]] = {
    c.PauseWebhook.TYPE: pause_webhook,
    c.ResumeWebhook.TYPE: resume_webhook,
    c.PauseConnector.TYPE: pause_connector,
    c.ResumeConnector.TYPE: resume_connector,
}
