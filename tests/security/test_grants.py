"""Issue 14.4: nobody grants a role or a permission they do not hold, only owners grant admin
or owner, nobody changes their own role.

The whole grant matrix runs through the real admin decider without a broker (acting roles x
permissions through groups x target roles x what is granted); the issue's own case and a
command sent around the gateway run over the real system.
"""

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from contracts import Actor, Envelope
from contracts.permissions import ALL_PERMISSIONS, MANAGE_AGENTS, ROLE_PERMISSIONS, VIEW_BILLING
from relaydesk.bus import Bus
from relaydesk.bus.rpc import RpcClient
from relaydesk.settings import Settings
from tests.admin.helpers import bearer, owner_session
from tests.deciders.harness import Desk, admin_desk, event
from tests.system import RunningSystem, running_system

ROLES = ("owner", "admin", "supervisor", "agent")
# The rule, written out: which roles each role may hand out, and whose accounts it may change
# (besides holding every permission the other account holds).
GRANTABLE = {
    "owner": {"owner", "admin", "supervisor", "agent"},
    "admin": {"supervisor", "agent"},
    "supervisor": {"supervisor", "agent"},
    "agent": {"agent"},
}
CHANGEABLE = {
    "owner": {"owner", "admin", "supervisor", "agent"},
    "admin": {"admin", "supervisor", "agent"},
    "supervisor": {"supervisor", "agent"},
    "agent": {"agent"},
}
# What the acting agent's groups add to its role
EXTRAS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({MANAGE_AGENTS}),
    frozenset({MANAGE_AGENTS, VIEW_BILLING}),
)
TARGET_EXTRAS: tuple[frozenset[str], ...] = (frozenset(), frozenset({VIEW_BILLING}))
PERMISSIONS = sorted(ALL_PERMISSIONS)


def group_of(permissions: frozenset[str]) -> str:
    return "g-" + "-".join(sorted(permissions)) if permissions else ""


@dataclass(frozen=True)
class Case:
    role: str  # the acting agent's
    extras: frozenset[str]

    @property
    def holds(self) -> frozenset[str]:
        return ROLE_PERMISSIONS[self.role] | self.extras

    @property
    def manages(self) -> bool:
        return MANAGE_AGENTS in self.holds

    def may_change(self, role: str, extras: frozenset[str]) -> bool:
        return role in CHANGEABLE[self.role] and (ROLE_PERMISSIONS[role] | extras) <= self.holds

    def desk(self, target_role: str = "agent", target_extras: frozenset[str] = frozenset()) -> Desk:
        """The tenant: a group per permission set, the acting agent "me", the target "them"."""
        groups = {group_of(frozenset({p})) for p in PERMISSIONS} | {
            group_of(e) for e in (*EXTRAS, *TARGET_EXTRAS) if e
        }
        setup = [event("tenant.created", {"tenant_id": "acme", "name": "Acme", "mode": "tool"})]
        for gid in sorted(groups):
            setup.append(
                event(
                    "permission_group.created",
                    {
                        "group_id": gid,
                        "name": gid,
                        "permissions": gid.removeprefix("g-").split("-"),
                    },
                    stream=f"group:{gid}",
                )
            )
        for agent_id, role, extras in [
            ("me", self.role, self.extras),
            ("them", target_role, target_extras),
        ]:
            data = {
                "agent_id": agent_id,
                "email": f"{agent_id}@acme.test",
                "name": agent_id,
                "role": role,
                "groups": [group_of(extras)] if extras else [],
            }
            setup.append(event("agent.created", data, stream=f"agent:{agent_id}"))
        return admin_desk(mode="tool").given(*setup)

    async def decide(self, desk: Desk, type_name: str, data: dict[str, Any]) -> bool:
        kind = "admin" if self.role in ("owner", "admin") else "agent"  # as the gateway sends
        command = Envelope(
            type=type_name,
            tenant="acme",
            stream="tenant",
            actor=Actor(kind=kind, id="me"),
            data=data,
        )
        reply = await desk.when(command)
        assert reply.ok or reply.code == "forbidden", (self, type_name, data, reply)
        return reply.ok


CASES = [Case(role, extras) for role in ROLES for extras in EXTRAS]


def _name(case: Case) -> str:
    return f"{case.role}+{'+'.join(sorted(case.extras)) or 'nothing'}"


@pytest.mark.parametrize("case", CASES, ids=_name)
async def test_the_whole_grant_matrix(case: Case) -> None:
    mismatches: list[str] = []

    async def expect(what: str, allowed: bool, desk: Desk, type_name: str, data: dict) -> None:
        if await case.decide(desk, type_name, data) != allowed:
            mismatches.append(f"{what}: expected {'allowed' if allowed else 'refused'}")

    new = {"email": "new@acme.test", "name": "New", "password_hash": "h"}
    for role in ROLES:
        await expect(
            f"create a {role}",
            case.manages and role in GRANTABLE[case.role],
            case.desk(),
            "agent.create",
            {**new, "agent_id": "new", "role": role},
        )
    for permission in PERMISSIONS:
        granted = {"groups": [group_of(frozenset({permission}))]}
        await expect(
            f"create an agent with {permission}",
            case.manages and permission in case.holds,
            case.desk(),
            "agent.create",
            {**new, "agent_id": "new", **granted},
        )
        for type_name, data in [
            (
                "permission_group.create",
                {"group_id": "new", "name": "N", "permissions": [permission]},
            ),
            (
                "permission_group.update",
                {"group_id": "g-transfer", "changes": {"permissions": [permission]}},
            ),
        ]:
            await expect(
                f"{type_name} with {permission}",
                case.manages and permission in case.holds,
                case.desk(),
                type_name,
                data,
            )
    for target_role, target_extras in itertools.product(ROLES, TARGET_EXTRAS):
        target = f"a {target_role}{' with ' + ', '.join(target_extras) if target_extras else ''}"
        may_change = case.manages and case.may_change(target_role, target_extras)
        for role in ROLES:
            await expect(
                f"make {target} a {role}",
                may_change and (role == target_role or role in GRANTABLE[case.role]),
                case.desk(target_role, target_extras),
                "agent.update",
                {"agent_id": "them", "changes": {"role": role}},
            )
        for permission in PERMISSIONS:
            await expect(
                f"give {target} {permission}",
                may_change and permission in case.holds,
                case.desk(target_role, target_extras),
                "agent.update",
                {"agent_id": "them", "changes": {"groups": [group_of(frozenset({permission}))]}},
            )
        await expect(
            f"set the password of {target}",
            may_change,
            case.desk(target_role, target_extras),
            "agent.update",
            {"agent_id": "them", "changes": {"password_hash": "new"}},
        )
        await expect(
            f"remove {target}",
            may_change,
            case.desk(target_role, target_extras),
            "agent.remove",
            {"agent_id": "them"},
        )
        if target_extras:  # through the group that gives them their extras (issue: a
            # manager emptied a supervisor's group, which it could not have edited directly)
            group = group_of(target_extras)
            for what, type_name, data in [
                ("rename", "permission_group.update", {"changes": {"name": "Renamed"}}),
                ("empty", "permission_group.update", {"changes": {"permissions": []}}),
                ("delete", "permission_group.delete", {}),
            ]:
                await expect(
                    f"{what} the group of {target}",
                    may_change,
                    case.desk(target_role, target_extras),
                    type_name,
                    {"group_id": group, **data},
                )
    for role in ROLES:
        await expect(
            f"change one's own role to {role}",
            case.manages and role == case.role,  # unchanged is no change
            case.desk(),
            "agent.update",
            {"agent_id": "me", "changes": {"role": role}},
        )
    await expect(
        "rename oneself",
        case.manages,
        case.desk(),
        "agent.update",
        {"agent_id": "me", "changes": {"name": "Me"}},
    )
    assert mismatches == []


async def test_the_operator_and_unknown_actors() -> None:
    desk = Case("agent", frozenset()).desk()
    new_owner = {
        "agent_id": "new",
        "email": "n@acme.test",
        "name": "N",
        "role": "owner",
        "password_hash": "h",
    }
    operator = Envelope(
        type="agent.create",
        tenant="acme",
        stream="tenant",
        actor=Actor(kind="admin", id="cli"),
        data=new_owner,
    )
    assert (await desk.when(operator)).ok  # relaydesk admin on the operator's machine
    for actor in [Actor(kind="agent", id="ghost"), Actor(kind="customer", id="v1")]:
        sent = Envelope(
            type="agent.create",
            tenant="acme",
            stream="tenant",
            actor=actor,
            data={**new_owner, "agent_id": "x", "email": "x@acme.test", "role": "agent"},
        )
        reply = await Case("agent", frozenset()).desk().when(sent)
        assert reply.code == "forbidden", actor
    removed = (
        Case("owner", frozenset())
        .desk()
        .given(event("agent.removed", {"agent_id": "me"}, stream="agent:me"))
    )
    reply = await removed.when(
        Envelope(
            type="agent.create",
            tenant="acme",
            stream="tenant",
            actor=Actor(kind="admin", id="me"),
            data={**new_owner, "role": "agent"},
        )
    )
    assert reply.code == "forbidden"


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[RunningSystem]:
    async with running_system(settings, with_history=False) as running:
        yield running


async def test_manage_agents_through_a_group_is_no_way_up(system: RunningSystem, bus: Bus) -> None:
    """The issue's case: an agent given manage_agents by a group."""
    async with httpx.AsyncClient(base_url=system.gateway.base_url) as http:
        owner = await owner_session(system, http, "acme")

        async def group(name: str, *permissions: str) -> str:
            made = await http.post(
                "/api/admin/groups", headers=owner, json={"name": name, "permissions": permissions}
            )
            assert made.status_code == 201, made.text
            return str(made.json()["group_id"])

        async def agent(email: str, role: str, groups: list[str]) -> str:
            made = await http.post(
                "/api/admin/agents",
                headers=owner,
                json={
                    "email": email,
                    "name": email.split("@")[0],
                    "role": role,
                    "groups": groups,
                    "password": "violet harbour mist",
                },
            )
            assert made.status_code == 201, made.text
            return str(made.json()["agent_id"])

        leads, billing = await group("Leads", MANAGE_AGENTS), await group("Billing", VIEW_BILLING)
        mia_id = await agent("mia@acme.test", "agent", [leads])
        bill_id = await agent("bill@acme.test", "agent", [billing])
        adam_id = await agent("adam@acme.test", "admin", [])
        mia = await bearer(http, "acme", "mia@acme.test", "violet harbour mist")
        adam = await bearer(http, "acme", "adam@acme.test", "violet harbour mist")

        async def refused(headers: dict[str, str], method: str, path: str, body: dict) -> None:
            answer = await http.request(method, path, headers=headers, json=body)
            assert answer.status_code == 403, (path, body, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"

        new = {"name": "New", "password": "zebra lantern quiet"}
        await refused(mia, "PATCH", f"/api/admin/agents/{mia_id}", {"role": "supervisor"})
        await refused(
            mia, "POST", "/api/admin/agents", {**new, "email": "s@acme.test", "role": "supervisor"}
        )
        await refused(mia, "PATCH", f"/api/admin/agents/{bill_id}", {"password": "amber fox quay"})
        await refused(mia, "PATCH", f"/api/admin/agents/{mia_id}", {"groups": [leads, billing]})
        await refused(
            adam, "POST", "/api/admin/agents", {**new, "email": "a2@acme.test", "role": "admin"}
        )
        await refused(adam, "PATCH", f"/api/admin/agents/{adam_id}", {"role": "owner"})
        made = await http.post(
            "/api/admin/agents", headers=mia, json={**new, "email": "ok@acme.test", "role": "agent"}
        )
        assert made.status_code == 201, made.text

        # Around the gateway: the same command on the bus is refused by the admin service
        reply = await RpcClient(bus).command(
            "admin",
            Envelope(
                type="agent.update",
                tenant="acme",
                stream=f"agent:{mia_id}",
                actor=Actor(kind="agent", id=mia_id),
                data={"agent_id": mia_id, "changes": {"role": "admin"}},
            ),
            timeout=10,
        )
        assert not reply.ok and reply.code == "forbidden"

        # The group loses manage_agents: Mia's token from before cannot create anyone any more
        assert (
            await http.patch(f"/api/admin/groups/{leads}", headers=owner, json={"permissions": []})
        ).status_code == 200
        late = await http.post(
            "/api/admin/agents", headers=mia, json={**new, "email": "late@acme.test"}
        )
        assert late.status_code in (401, 403), late.text
        roles = {
            a["email"]: a["role"]
            for a in (await http.get("/api/admin/agents", headers=owner)).json()
        }
        assert roles == {
            "boss@acme.test": "owner",
            "mia@acme.test": "agent",
            "bill@acme.test": "agent",
            "adam@acme.test": "admin",
            "ok@acme.test": "agent",
        }
