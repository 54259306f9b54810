"""Who may hand out which role and permission (docs/security.md, 4).

Checked where agents and permission groups change: in the admin decisions, against the
admin state, so the acting agent's role and permissions are the current ones (not those of
a token issued before a group lost a permission) and no client of the bus can go around
them. The rules:

- agents and permission groups are managed with ``manage_agents`` only;
- nobody grants a role they do not hold (ranks: agent < supervisor < admin = owner), and
  only owners grant ``admin`` or ``owner``;
- nobody grants a permission they do not hold, through a group they create, change or put
  someone in;
- nobody changes someone above them, or someone holding a permission they lack (their
  password, role, groups: taking over such an account would be a way up too); an owner only
  by an owner;
- nor through a group: a group is changed or deleted only by someone who holds every
  permission it has and may change every member of it (emptying a supervisor's group
  takes their permissions as surely as editing them);
- nobody changes their own role.

The acting agent is the command's actor. An actor that is not an agent of the tenant is the
operator (``relaydesk admin`` on the operator's machine, the sign-up flow): its commands
are not an agent's grants; an unknown *agent* actor is refused.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from agent_service.admin.state import AdminState, AgentRecord, TenantAdmin
from contracts.commands import admin as c
from contracts.envelope import Actor, ActorKind
from contracts.permissions import (
    ALL_PERMISSIONS,
    MANAGE_AGENTS,
    MANAGE_CONNECTORS,
    MANAGE_SETTINGS,
    OWNERS_ONLY,
    RANK,
    effective_permissions,
)
from relaydesk.decider import Rejected

OPERATOR_KINDS = frozenset({ActorKind.admin, ActorKind.system})


@dataclass(frozen=True)
class Granter:
    """The acting agent as the admin state knows it."""

    agent_id: str
    role: str
    permissions: frozenset[str]


def permissions_of(t: TenantAdmin, agent: AgentRecord) -> frozenset[str]:
    return effective_permissions(agent.role, tuple(t.permissions_of(agent)))


def granter(t: TenantAdmin, actor: Actor) -> Granter | None:
    """The acting agent, or None for the operator."""
    agent = t.agents.get(actor.id)
    if agent is None:
        if actor.kind in OPERATOR_KINDS:
            return None
        raise Rejected("forbidden", "the acting agent is not an agent of this tenant")
    if agent.removed:
        raise Rejected("forbidden", "the acting agent was removed")
    return Granter(agent.agent_id, agent.role, permissions_of(t, agent))


def _manages_agents(g: Granter) -> None:
    if MANAGE_AGENTS not in g.permissions:
        raise Rejected("forbidden", f"missing permission {MANAGE_AGENTS}")


def _may_grant_role(g: Granter, role: str) -> None:
    if role in OWNERS_ONLY and g.role != "owner":
        raise Rejected("forbidden", f"only an owner grants the {role} role")
    if RANK.get(role, 0) > RANK.get(g.role, 0):
        raise Rejected("forbidden", f"a {g.role} cannot grant the {role} role")


def _may_grant_permissions(g: Granter, permissions: Iterable[str]) -> None:
    wanted = set(permissions)
    unknown = wanted - ALL_PERMISSIONS
    if unknown:
        raise Rejected("invalid_payload", f"unknown permission {min(unknown)!r}")
    missing = wanted - g.permissions
    if missing:
        raise Rejected(
            "forbidden", f"cannot grant permissions you do not have: {', '.join(sorted(missing))}"
        )


def _group_permissions(t: TenantAdmin, groups: Iterable[str]) -> set[str]:
    # unknown groups are the decision's not_found, after this check
    return {p for gid in groups if gid in t.groups for p in t.groups[gid].get("permissions", ())}


def _may_change(t: TenantAdmin, g: Granter, target: AgentRecord) -> None:
    if target.agent_id == g.agent_id:
        return  # one's own account: what may change is decided per field (the role: never)
    if target.role == "owner" and g.role != "owner":
        raise Rejected("forbidden", f"a {g.role} cannot change an owner")
    if RANK.get(target.role, 0) > RANK.get(g.role, 0):
        raise Rejected("forbidden", f"a {g.role} cannot change a {target.role}")
    beyond = permissions_of(t, target) - g.permissions
    if beyond:
        raise Rejected(
            "forbidden",
            f"cannot change an agent holding permissions you do not have: "
            f"{', '.join(sorted(beyond))}",
        )


def _create_agent(t: TenantAdmin, g: Granter, cmd: c.CreateAgent) -> None:
    _manages_agents(g)
    _may_grant_role(g, cmd.role)
    _may_grant_permissions(g, _group_permissions(t, cmd.groups))


def _update_agent(t: TenantAdmin, g: Granter, cmd: c.UpdateAgent) -> None:
    _manages_agents(g)
    target = t.agents.get(cmd.agent_id)
    if target is None or target.removed:
        return  # the decision says not_found
    _may_change(t, g, target)
    role = cmd.changes.get("role")
    if role is not None and role not in RANK:
        raise Rejected("invalid_payload", f"no role {role!r}")
    if role is not None and role != target.role:
        if target.agent_id == g.agent_id:
            raise Rejected("forbidden", "nobody changes their own role")
        _may_grant_role(g, str(role))
    groups = cmd.changes.get("groups")
    if groups is not None:
        _may_grant_permissions(g, _group_permissions(t, groups))


def _remove_agent(t: TenantAdmin, g: Granter, cmd: c.RemoveAgent) -> None:
    _manages_agents(g)
    target = t.agents.get(cmd.agent_id)
    if target is not None and not target.removed:
        _may_change(t, g, target)


def _create_group(t: TenantAdmin, g: Granter, cmd: c.CreateGroup) -> None:
    _manages_agents(g)
    _may_grant_permissions(g, cmd.permissions)


def _may_change_group(t: TenantAdmin, g: Granter, group_id: str) -> None:
    group = t.groups.get(group_id)
    if group is None:
        return  # the decision says not_found
    beyond = set(group.get("permissions", ())) - g.permissions
    if beyond:
        raise Rejected(
            "forbidden",
            f"cannot change a group holding permissions you do not have: "
            f"{', '.join(sorted(beyond))}",
        )
    for member in t.agents.values():
        if group_id in member.groups and not member.removed:
            _may_change(t, g, member)


def _update_group(t: TenantAdmin, g: Granter, cmd: c.UpdateGroup) -> None:
    _manages_agents(g)
    _may_change_group(t, g, cmd.group_id)
    permissions = cmd.changes.get("permissions")
    if permissions is not None:
        _may_grant_permissions(g, permissions)


def _delete_group(t: TenantAdmin, g: Granter, cmd: c.DeleteGroup) -> None:
    _manages_agents(g)
    _may_change_group(t, g, cmd.group_id)


def _holding(permission: str) -> Callable[[TenantAdmin, Granter, Any], None]:
    """Pausing and resuming: the permission the gateway's route asks for, checked here too
    so no client of the bus goes around it."""

    def check(t: TenantAdmin, g: Granter, cmd: Any) -> None:
        if permission not in g.permissions:
            raise Rejected("forbidden", f"missing permission {permission}")

    return check


CHECKS: dict[type[Any], Callable[[TenantAdmin, Granter, Any], None]] = {
    c.CreateAgent: _create_agent,
    c.UpdateAgent: _update_agent,
    c.RemoveAgent: _remove_agent,
    c.CreateGroup: _create_group,
    c.UpdateGroup: _update_group,
    c.DeleteGroup: _delete_group,
    c.PauseWebhook: _holding(MANAGE_SETTINGS),
    c.ResumeWebhook: _holding(MANAGE_SETTINGS),
    c.PauseConnector: _holding(MANAGE_CONNECTORS),
    c.ResumeConnector: _holding(MANAGE_CONNECTORS),
}


def check_grants(state: AdminState, tenant: str, actor: Actor, command: Any) -> None:
    """Raise :class:`Rejected` if ``actor`` may not make ``command``'s grants."""
    check = CHECKS.get(type(command))
    t = state.tenants.get(tenant)
    if check is None or t is None or not t.exists:
        return  # not a grant, or no tenant: the decision itself says not_found
    g = granter(t, actor)
    if g is not None:
        check(t, g, command)
