"""The admin state: a fold of the log (tenants, agents, groups, canned responses, settings).

It also records, for every admin command already decided, the reply the log gives it
(:func:`relaydesk.decider.record_answer`), so a redelivered command is answered, not
decided again.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from contracts.envelope import Envelope
from contracts.events.admin import (
    AgentCreated,
    AgentRemoved,
    AgentUpdated,
    CannedResponseCreated,
    CannedResponseDeleted,
    CannedResponseUpdated,
    PermissionGroupCreated,
    PermissionGroupDeleted,
    PermissionGroupUpdated,
    TenantCreated,
    TenantSettingsChanged,
    WebhookPaused,
    WebhookResumed,
    WebhookSubscribed,
    WebhookUnsubscribed,
)
from contracts.events.billing import SubscriptionChanged
from contracts.events.connector import (
    ConnectorConfigured,
    ConnectorPaused,
    ConnectorRemoved,
    ConnectorResumed,
)
from contracts.events.message import MessageSent
from contracts.events.signup import TenantSignedUp
from contracts.plan_limits import TenantPlan
from contracts.replies import CommandReply
from contracts.settings import accepted_changes, default_settings
from relaydesk.decider import record_answer
from relaydesk.emails import normalize_email
from relaydesk.snapshots import AheadOfLog

SERVICE = "admin"


@dataclass
class AgentRecord:
    agent_id: str
    email: str
    name: str
    role: str
    password_hash: str | None
    groups: tuple[str, ...] = ()
    max_chats: int = 5
    token_version: int = 0
    removed: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "groups": list(self.groups),
            "max_chats": self.max_chats,
            "token_version": self.token_version,
        }


@dataclass
class TenantAdmin:
    tenant_id: str
    name: str = ""
    mode: str = "tool"
    exists: bool = False
    # contracts.settings.TenantSettings as JSON values: the defaults, changes folded over them
    settings: dict[str, Any] = field(default_factory=default_settings)
    agents: dict[str, AgentRecord] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    canned: dict[str, dict[str, Any]] = field(default_factory=dict)
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    connectors: dict[str, str] = field(default_factory=dict)  # id -> platform: pause/resume
    # The pauses in force (their event ids), by subscription / connector id: a resume ends
    # those it names. A pause may come before its subscription or connector exists (an
    # import pauses what it creates from its very first fold).
    webhook_pauses: dict[str, list[str]] = field(default_factory=dict)
    connector_pauses: dict[str, list[str]] = field(default_factory=dict)
    pending: dict[str, Any] | None = None  # a SaaS sign-up waiting for its e-mail confirmation
    plan: TenantPlan = field(
        default_factory=TenantPlan
    )  # SaaS: the plan whose agent_seats this service enforces

    def active_agents(self) -> int:
        return sum(1 for a in self.agents.values() if not a.removed)

    def agent_by_email(self, email: str) -> AgentRecord | None:
        email = normalize_email(email)
        return next((a for a in self.agents.values() if a.email == email and not a.removed), None)

    def permissions_of(self, agent: AgentRecord) -> list[str]:
        granted: set[str] = set()
        for group_id in agent.groups:
            granted |= set(self.groups.get(group_id, {}).get("permissions", ()))
        return sorted(granted)


class AdminState:
    def __init__(self) -> None:
        self.tenants: dict[str, TenantAdmin] = {}
        self.position = -1
        self.seen: set[str] = set()
        self.replies: dict[str, CommandReply] = {}  # command id -> the reply the log gives
        # A log position at or before each subscription's creation: where its worker starts
        # reading when it has no stored position yet (a subscription resumed before it ever
        # delivered). Not in ``snapshot()``: a decision folds its event before it has one
        # (the position before; its own once the log hands it back).
        self.webhook_since: dict[tuple[str, str], int] = {}
        # Our decided events not yet read back: a snapshot of the state waits for them.
        self.ahead = AheadOfLog(SERVICE)
        # Bumped by every fold that changes which webhooks deliver: the service syncs its
        # workers only when it moved, not after every batch of chat events.
        self.webhook_version = 0

    def tenant(self, tenant_id: str) -> TenantAdmin:
        if tenant_id not in self.tenants:
            self.tenants[tenant_id] = TenantAdmin(tenant_id)
        return self.tenants[tenant_id]

    def snapshot(self) -> dict[str, Any]:
        """Everything the fold decided, as plain data: a rebuild from the log must give the same."""
        return {
            tid: {**asdict(t), "agents": {aid: asdict(a) for aid, a in t.agents.items()}}
            for tid, t in sorted(self.tenants.items())
        }

    def webhook_subscriptions(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The subscriptions that deliver now (paused ones do not), with ``since``."""
        return {
            (tid, sid): {**sub, "since": self.webhook_since.get((tid, sid), -1)}
            for tid, t in self.tenants.items()
            for sid, sub in t.webhooks.items()
            if not t.webhook_pauses.get(sid)
        }

    def apply(self, event: Envelope, position: int | None = None) -> None:
        if position is None:
            self.ahead.decided(event, self.replies)
        else:
            self.position = max(self.position, position)
            if self.ahead.logged(event.id) and event.type == WebhookSubscribed.TYPE:
                # its own position, as a fold of the log gives it (and a restart from a
                # snapshot): still at or before the subscription's creation
                self.webhook_since[(event.tenant, event.data["subscription_id"])] = position
        record_answer(self.replies, event, SERVICE)
        fold = _FOLDS.get(event.type)
        # Only what changes admin state is remembered: the log also carries every chat event.
        if (
            fold is None
            or event.id in self.seen
            or (event.type == MessageSent.TYPE and not event.data.get("canned_response_id"))
        ):
            return
        self.seen.add(event.id)
        data = event.data
        if event.type == TenantSignedUp.TYPE:
            data = {**data, "signed_up_at": event.occurred_at}
        elif event.type in (WebhookPaused.TYPE, ConnectorPaused.TYPE):
            data = {**data, "pause_id": event.id}  # what a resume names to end it
        elif event.type == WebhookSubscribed.TYPE:
            # from the log: its own position; while deciding: the last one folded, before it
            since = self.position if position is None else position
            self.webhook_since[(event.tenant, data["subscription_id"])] = since
        fold(self.tenant(event.tenant), data)
        if event.type in _WEBHOOK_EVENTS:
            self.webhook_version += 1


def _tenant_created(t: TenantAdmin, d: dict) -> None:
    t.exists, t.name, t.mode, t.pending = True, d["name"], d.get("mode", "tool"), None
    t.plan.apply(TenantCreated.TYPE, d)


def _signed_up(t: TenantAdmin, d: dict) -> None:
    if not t.exists:
        t.name, t.mode, t.pending = d["name"], "saas", dict(d)


def _settings(t: TenantAdmin, d: dict) -> None:
    t.settings.update(accepted_changes(d.get("after") or {}))


def _agent_created(t: TenantAdmin, d: dict) -> None:
    t.agents[d["agent_id"]] = AgentRecord(
        agent_id=d["agent_id"],
        email=normalize_email(d["email"]),
        name=d["name"],
        role=d.get("role", "agent"),
        password_hash=d.get("password_hash"),
        groups=tuple(d.get("groups") or ()),
        max_chats=d.get("max_chats", 5),
    )


def _agent_updated(t: TenantAdmin, d: dict) -> None:
    agent = t.agents.get(d["agent_id"])
    if agent is None:
        return
    for key, value in (d.get("after") or {}).items():
        if key == "groups":
            value = tuple(value or ())
        if hasattr(agent, key):
            setattr(agent, key, value)


def _agent_removed(t: TenantAdmin, d: dict) -> None:
    agent = t.agents.get(d["agent_id"])
    if agent is not None:
        agent.removed = True
        agent.token_version += 1


def _group_created(t: TenantAdmin, d: dict) -> None:
    t.groups[d["group_id"]] = {
        k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in d.items()
    }


def _group_updated(t: TenantAdmin, d: dict) -> None:
    if d["group_id"] in t.groups:
        t.groups[d["group_id"]].update(d.get("after") or {})


def _canned_created(t: TenantAdmin, d: dict) -> None:
    t.canned[d["canned_id"]] = {**d, "uses": 0}


def _canned_updated(t: TenantAdmin, d: dict) -> None:
    if d["canned_id"] in t.canned:
        t.canned[d["canned_id"]].update(d.get("after") or {})


def _canned_used(t: TenantAdmin, d: dict) -> None:
    if d.get("canned_id") in t.canned:
        t.canned[d["canned_id"]]["uses"] += 1


def _message_sent(t: TenantAdmin, d: dict) -> None:
    if d.get("canned_response_id"):
        _canned_used(t, {"canned_id": d["canned_response_id"]})


def _paused(pauses: dict[str, list[str]], key: str, d: dict) -> None:
    if d["pause_id"] not in pauses.setdefault(key, []):
        pauses[key].append(d["pause_id"])


def _resumed(pauses: dict[str, list[str]], key: str, d: dict) -> None:
    left = [p for p in pauses.get(key, []) if p not in d["pauses"]]
    if left:
        pauses[key] = left
    else:
        pauses.pop(key, None)


def _unsubscribed(t: TenantAdmin, d: dict) -> None:
    t.webhooks.pop(d["subscription_id"], None)
    t.webhook_pauses.pop(d["subscription_id"], None)


def _connector_removed(t: TenantAdmin, d: dict) -> None:
    t.connectors.pop(d["connector_id"], None)
    t.connector_pauses.pop(d["connector_id"], None)


_WEBHOOK_EVENTS = frozenset(
    {WebhookSubscribed.TYPE, WebhookUnsubscribed.TYPE, WebhookPaused.TYPE, WebhookResumed.TYPE}
)

_FOLDS = {
    TenantCreated.TYPE: _tenant_created,
    TenantSettingsChanged.TYPE: _settings,
    AgentCreated.TYPE: _agent_created,
    AgentUpdated.TYPE: _agent_updated,
    AgentRemoved.TYPE: _agent_removed,
    PermissionGroupCreated.TYPE: _group_created,
    PermissionGroupUpdated.TYPE: _group_updated,
    PermissionGroupDeleted.TYPE: lambda t, d: t.groups.pop(d["group_id"], None),
    CannedResponseCreated.TYPE: _canned_created,
    CannedResponseUpdated.TYPE: _canned_updated,
    CannedResponseDeleted.TYPE: lambda t, d: t.canned.pop(d["canned_id"], None),
    MessageSent.TYPE: _message_sent,
    TenantSignedUp.TYPE: _signed_up,
    SubscriptionChanged.TYPE: lambda t, d: t.plan.apply(SubscriptionChanged.TYPE, d),
    WebhookSubscribed.TYPE: lambda t, d: t.webhooks.__setitem__(
        d["subscription_id"], {**d, "event_types": list(d["event_types"])}
    ),
    WebhookUnsubscribed.TYPE: _unsubscribed,
    WebhookPaused.TYPE: lambda t, d: _paused(t.webhook_pauses, d["subscription_id"], d),
    WebhookResumed.TYPE: lambda t, d: _resumed(t.webhook_pauses, d["subscription_id"], d),
    ConnectorConfigured.TYPE: lambda t, d: t.connectors.__setitem__(
        d["connector_id"], d["platform"]
    ),
    ConnectorRemoved.TYPE: _connector_removed,
    ConnectorPaused.TYPE: lambda t, d: _paused(t.connector_pauses, d["connector_id"], d),
    ConnectorResumed.TYPE: lambda t, d: _resumed(t.connector_pauses, d["connector_id"], d),
}
