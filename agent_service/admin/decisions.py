"""Admin command handlers: check against the folded state, return the events to emit.

Each handler is pure: it returns a list of ``(event_type, data)`` or raises
:class:`relaydesk.decider.Rejected`; the admin decider (``decider.py``) emits them.
Edits carry before/after so the audit view shows exactly what changed.
"""

import re
from collections.abc import Callable
from typing import Any

from agent_service.admin.state import AdminState, TenantAdmin
from contracts.commands import admin as c
from contracts.commands.admin import (
    CreateAgent,
    CreateCanned,
    CreateGroup,
    CreateTenant,
    DeleteCanned,
    DeleteGroup,
    RemoveAgent,
    UpdateAgent,
    UpdateCanned,
    UpdateGroup,
    UpdateSettings,
)
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
)
from contracts.settings import SettingsRefused, edit_settings
from relaydesk.decider import Rejected
from relaydesk.emails import normalize_email

Emitted = list[tuple[str, dict[str, Any]]]
AGENT_EDITABLE = frozenset({"name", "role", "groups", "max_chats", "password_hash"})
GROUP_EDITABLE = frozenset({"name", "permissions", "departments", "channels"})
CANNED_EDITABLE = frozenset({"shortcut", "text", "language", "scope", "group_id"})
# An address as sign-up takes it (gateway/routes/signup.py): something, one @, something. A
# login compares the typed address with this one, so anything else could never sign in.
EMAIL_FORM = re.compile(r"^[^@\s]+@[^@\s]+$")


def existing_tenant(state: AdminState, tenant: str) -> TenantAdmin:
    t = state.tenants.get(tenant)
    if t is None or not t.exists:
        raise Rejected("not_found", f"no tenant {tenant!r}")
    return t


def _something_to_change(changes: dict[str, Any]) -> None:
    """An edit changes something: an empty one put an update with no change on the log (and
    in the audit), as if someone had edited nothing."""
    if not changes:
        raise Rejected("invalid_payload", "nothing to change")


def _edit(
    current: dict[str, Any], changes: dict[str, Any], editable: frozenset[str]
) -> tuple[dict, dict]:
    _something_to_change(changes)
    unknown = set(changes) - editable
    if unknown:
        raise Rejected("invalid_payload", f"cannot change {', '.join(sorted(unknown))}")
    before = {k: current.get(k) for k in changes}
    after = {k: list(v) if isinstance(v, tuple) else v for k, v in changes.items()}
    return before, after


def create_tenant(state: AdminState, tenant: str, cmd: c.CreateTenant) -> Emitted:
    if cmd.tenant_id != tenant:
        raise Rejected("forbidden", "a tenant is created in its own name")
    if tenant in state.tenants and (state.tenants[tenant].exists or state.tenants[tenant].pending):
        raise Rejected("already_exists", f"tenant {tenant!r} exists")
    check_name(cmd.name)
    return [(TenantCreated.TYPE, cmd.model_dump(exclude_none=True))]


def _check_email(email: str) -> str:
    """The stored form of a new agent's address, or ``invalid_payload``."""
    normalized = normalize_email(email)
    if not EMAIL_FORM.match(normalized):
        raise Rejected("invalid_payload", f"email: {email!r} is not an e-mail address")
    return normalized


def check_name(name: object) -> None:
    if isinstance(name, str) and not name.strip():
        raise Rejected("invalid_payload", "name: a name cannot be empty")


def _check_owner_left(t: TenantAdmin, agent_id: str) -> None:
    """A tenant keeps an owner: only an owner grants admin or owner, so a tenant without one
    could never get one back (in SaaS mode nobody else can)."""
    target = t.agents[agent_id]
    if target.role != "owner":
        return
    others = [a for a in t.agents.values() if a.role == "owner" and not a.removed]
    if [a.agent_id for a in others] == [agent_id]:
        raise Rejected(
            "conflict",
            f"{target.email} is the tenant's last owner: make another agent owner first",
        )


def _check_groups(t: TenantAdmin, groups: Any) -> None:
    unknown = set(groups or ()) - set(t.groups)
    if unknown:
        raise Rejected("not_found", f"no group {min(unknown)!r}")


def create_agent(state: AdminState, tenant: str, cmd: c.CreateAgent) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.agent_id in t.agents and not t.agents[cmd.agent_id].removed:
        raise Rejected("already_exists", "agent id taken")
    email = _check_email(cmd.email)  # the form lookup and lockout use
    check_name(cmd.name)
    if t.agent_by_email(email):
        raise Rejected("already_exists", "email taken")
    _check_groups(t, cmd.groups)
    data = cmd.model_dump()
    data["email"] = email
    data["groups"] = list(cmd.groups)
    return [(AgentCreated.TYPE, data)]


def update_agent(state: AdminState, tenant: str, cmd: c.UpdateAgent) -> Emitted:
    t = existing_tenant(state, tenant)
    agent = t.agents.get(cmd.agent_id)
    if agent is None or agent.removed:
        raise Rejected("not_found", "no such agent")
    before, after = _edit(
        {**agent.public(), "password_hash": agent.password_hash}, cmd.changes, AGENT_EDITABLE
    )
    _check_groups(t, after.get("groups"))
    check_name(after.get("name"))
    if after.get("role", "owner") != "owner":
        _check_owner_left(t, cmd.agent_id)
    if any(k in after for k in ("role", "groups", "password_hash")):
        after["token_version"] = agent.token_version + 1  # old tokens stop working everywhere
        before["token_version"] = agent.token_version
    if "password_hash" in after:  # keep hashes out of before/after diffs shown in audits
        before["password_hash"], after["password_hash"] = "(old)", after["password_hash"]
    return [(AgentUpdated.TYPE, {"agent_id": cmd.agent_id, "before": before, "after": after})]


def remove_agent(state: AdminState, tenant: str, cmd: c.RemoveAgent) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.agent_id not in t.agents or t.agents[cmd.agent_id].removed:
        raise Rejected("not_found", "no such agent")
    _check_owner_left(t, cmd.agent_id)
    return [(AgentRemoved.TYPE, {"agent_id": cmd.agent_id})]


def update_settings(state: AdminState, tenant: str, cmd: c.UpdateSettings) -> Emitted:
    t = existing_tenant(state, tenant)
    _something_to_change(cmd.changes)
    try:
        before, after = edit_settings(t.settings, cmd.changes)
    except SettingsRefused as refused:
        raise Rejected("invalid_payload", str(refused)) from None
    return [(TenantSettingsChanged.TYPE, {"before": before, "after": after})]


def _name_free(t: TenantAdmin, name: object, group_id: str) -> None:
    """Agents pick a group by its name (a transfer's target, the agent form): two groups of
    one name could not be told apart."""
    if not isinstance(name, str):
        return  # the command's model says what is wrong
    for other_id, group in t.groups.items():
        if other_id != group_id and str(group.get("name", "")).casefold() == name.casefold():
            raise Rejected("already_exists", f"a group named {group.get('name')!r} exists")


def create_group(state: AdminState, tenant: str, cmd: c.CreateGroup) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.group_id in t.groups:
        raise Rejected("already_exists", "group id taken")
    _name_free(t, cmd.name, cmd.group_id)
    return [(PermissionGroupCreated.TYPE, cmd.model_dump())]


def update_group(state: AdminState, tenant: str, cmd: c.UpdateGroup) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.group_id not in t.groups:
        raise Rejected("not_found", "no such group")
    if "name" in cmd.changes:
        _name_free(t, cmd.changes["name"], cmd.group_id)
    before, after = _edit(t.groups[cmd.group_id], cmd.changes, GROUP_EDITABLE)
    return [
        (PermissionGroupUpdated.TYPE, {"group_id": cmd.group_id, "before": before, "after": after})
    ]


def delete_group(state: AdminState, tenant: str, cmd: c.DeleteGroup) -> Emitted:
    if cmd.group_id not in existing_tenant(state, tenant).groups:
        raise Rejected("not_found", "no such group")
    return [(PermissionGroupDeleted.TYPE, {"group_id": cmd.group_id})]


def create_canned(state: AdminState, tenant: str, cmd: c.CreateCanned) -> Emitted:
    t = existing_tenant(state, tenant)
    if cmd.canned_id in t.canned:
        raise Rejected("already_exists", "canned response id taken")
    if cmd.scope == "group" and cmd.group_id not in t.groups:
        raise Rejected("not_found", "a group canned response needs an existing group_id")
    if cmd.scope == "personal" and not cmd.owner_id:
        raise Rejected("invalid_payload", "a personal canned response needs its owner_id")
    created = cmd.model_dump(exclude_none=True)
    _check_canned(t, created, cmd.canned_id)
    return [(CannedResponseCreated.TYPE, created)]


def _shelf(canned: dict[str, Any]) -> tuple[str, str | None]:
    """Where a canned response is offered: the tenant's, one group's, or one agent's own."""
    scope = str(canned.get("scope", "tenant"))
    if scope == "group":
        return scope, canned.get("group_id")
    if scope == "personal":
        return scope, canned.get("owner_id")
    return scope, None


def _check_canned(t: TenantAdmin, canned: dict[str, Any], canned_id: str) -> None:
    """A canned response says something, and its shortcut picks one response where it is
    offered: two "hello"s (or "hello" and "HELLO") on one shelf made the composer's pick a
    guess."""
    for name in ("shortcut", "text"):
        if not str(canned.get(name, "")).strip():
            raise Rejected("invalid_payload", f"{name}: a canned response's {name} cannot be empty")
    shortcut = str(canned["shortcut"]).strip().casefold()
    for other_id, other in t.canned.items():
        if (
            other_id != canned_id
            and _shelf(other) == _shelf(canned)
            and str(other.get("shortcut", "")).strip().casefold() == shortcut
        ):
            raise Rejected(
                "already_exists",
                f"shortcut: {canned['shortcut']!r} is already a canned response here",
            )


def _editable_canned(
    state: AdminState, tenant: str, cmd: c.UpdateCanned | c.DeleteCanned
) -> TenantAdmin:
    t = existing_tenant(state, tenant)
    canned = t.canned.get(cmd.canned_id)
    if canned is None or (
        canned.get("scope") == "personal"
        and cmd.acting_agent
        and canned.get("owner_id") != cmd.acting_agent
    ):
        raise Rejected(
            "not_found", "no such canned response"
        )  # someone else's personal one is invisible
    if canned.get("scope") != "personal" and not cmd.may_edit_shared:
        raise Rejected("forbidden", "missing permission edit_shared_canned")
    return t


def update_canned(state: AdminState, tenant: str, cmd: c.UpdateCanned) -> Emitted:
    t = _editable_canned(state, tenant, cmd)
    before, after = _edit(t.canned[cmd.canned_id], cmd.changes, CANNED_EDITABLE)
    _check_canned(t, {**t.canned[cmd.canned_id], **after}, cmd.canned_id)
    return [
        (CannedResponseUpdated.TYPE, {"canned_id": cmd.canned_id, "before": before, "after": after})
    ]


def delete_canned(state: AdminState, tenant: str, cmd: c.DeleteCanned) -> Emitted:
    _editable_canned(state, tenant, cmd)
    return [(CannedResponseDeleted.TYPE, {"canned_id": cmd.canned_id})]


HANDLERS: dict[str, Callable[[AdminState, str, Any], Emitted]] = {
    CreateTenant.TYPE: create_tenant,
    CreateAgent.TYPE: create_agent,
    UpdateAgent.TYPE: update_agent,
    RemoveAgent.TYPE: remove_agent,
    UpdateSettings.TYPE: update_settings,
    CreateGroup.TYPE: create_group,
    UpdateGroup.TYPE: update_group,
    DeleteGroup.TYPE: delete_group,
    CreateCanned.TYPE: create_canned,
    UpdateCanned.TYPE: update_canned,
    DeleteCanned.TYPE: delete_canned,
}
