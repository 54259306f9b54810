"""The settings a what-if replay changes: ``KEY=VALUE`` pairs, checked, applied to routing state.

Keys (``relaydesk replay --what-if``, docs/audit.md "What-if routing"):

- ``routing_mode``, ``offer_timeout_s``, ``max_chats_default``: the tenant settings of the
  same names, judged by :class:`contracts.settings.TenantSettings` (one rule for what a
  valid value is, the settings page's own);
- ``max_chats.AGENT``: that agent's own chat limit (1 to 100);
- ``groups.AGENT``: that agent's permission groups, comma-separated (empty: none);
- ``departments.GROUP`` / ``channels.GROUP``: what a permission group covers, comma-separated.

A changed value holds for the whole replayed range: a recorded change of the same setting
(an admin's edit, a status sent with a chat limit) does not undo it.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from agent_service.state import Group, Tenant
from contracts.settings import TenantSettings

TENANT_KEYS = ("routing_mode", "offer_timeout_s", "max_chats_default")
AGENT_KEYS = ("max_chats", "groups")
GROUP_KEYS = ("departments", "channels")
KEYS = (*TENANT_KEYS, *(f"{k}.AGENT" for k in AGENT_KEYS), *(f"{k}.GROUP" for k in GROUP_KEYS))
MAX_CHATS = range(1, 101)  # an agent's own limit, as contracts' SetAgentStatus.max_chats


class WhatIfRefused(ValueError):
    """A ``KEY=VALUE`` the what-if cannot apply; the message names the key and why."""


@dataclass(frozen=True)
class Changes:
    """What a what-if changes: tenant settings, agents' limits and groups, groups' coverage."""

    settings: Mapping[str, Any] = field(default_factory=dict)
    agent_limits: Mapping[str, int] = field(default_factory=dict)
    agent_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group_cover: Mapping[tuple[str, str], tuple[str, ...]] = field(
        default_factory=dict
    )  # (group, "departments" | "channels") -> values

    def described(self) -> dict[str, Any]:
        """The changes as ``KEY: value`` (JSON values), for the report."""
        out: dict[str, Any] = dict(self.settings)
        out.update({f"max_chats.{a}": v for a, v in self.agent_limits.items()})
        out.update({f"groups.{a}": list(v) for a, v in self.agent_groups.items()})
        out.update({f"{kind}.{g}": list(v) for (g, kind), v in self.group_cover.items()})
        return out

    def check_names(self, agents: Iterable[str], groups: Iterable[str]) -> None:
        """Every agent and group named must exist in the tenant's log (a typo changes nothing)."""
        known_agents, known_groups = set(agents), set(groups)
        for agent_id in [*self.agent_limits, *self.agent_groups]:
            if agent_id not in known_agents:
                raise WhatIfRefused(f"{_key_of(self, agent_id)}: no agent {agent_id!r} in the log")
        named = [g for gs in self.agent_groups.values() for g in gs]
        for group_id in [*named, *(g for g, _ in self.group_cover)]:
            if group_id not in known_groups:
                raise WhatIfRefused(f"no permission group {group_id!r} in the log")

    def apply(self, tenant: Tenant) -> None:
        """Set the changed values on ``tenant`` (again after every step: they hold throughout)."""
        tenant.settings.update(self.settings)
        for agent_id, limit in self.agent_limits.items():
            tenant.agent(agent_id).max_chats = limit
        for agent_id, groups in self.agent_groups.items():
            tenant.agent(agent_id).groups = groups
        for (group_id, kind), values in self.group_cover.items():
            group = tenant.groups.setdefault(group_id, Group(group_id))
            setattr(group, kind, values)


def _key_of(changes: Changes, agent_id: str) -> str:
    return f"max_chats.{agent_id}" if agent_id in changes.agent_limits else f"groups.{agent_id}"


def _listed(value: str) -> tuple[str, ...]:
    return tuple(sorted({part.strip() for part in value.split(",") if part.strip()}))


def parse_changes(pairs: Iterable[str]) -> Changes:
    """``KEY=VALUE`` pairs as :class:`Changes`; raises :class:`WhatIfRefused` naming the key."""
    settings: dict[str, Any] = {}
    limits: dict[str, int] = {}
    agent_groups: dict[str, tuple[str, ...]] = {}
    cover: dict[tuple[str, str], tuple[str, ...]] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        key = key.strip()
        if not equals or not key:
            raise WhatIfRefused(f"{pair!r}: write KEY=VALUE")
        name, _, subject = key.partition(".")
        if key in TENANT_KEYS:
            settings[key] = _setting(key, value.strip())
        elif name in AGENT_KEYS and subject:
            if name == "max_chats":
                limits[subject] = _limit(key, value.strip())
            else:
                agent_groups[subject] = _listed(value)
        elif name in GROUP_KEYS and subject:
            cover[(subject, name)] = _listed(value)
        else:
            raise WhatIfRefused(f"unknown key {key!r}: the keys are {', '.join(KEYS)}")
    return Changes(settings, limits, agent_groups, cover)


def _setting(key: str, value: str) -> Any:
    try:
        return TenantSettings.model_validate({key: value}).as_json()[key]
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise WhatIfRefused(f"{key}: {reason} (got {value!r})") from None


def _limit(key: str, value: str) -> int:
    if not value.isdigit() or int(value) not in MAX_CHATS:
        raise WhatIfRefused(f"{key}: a chat limit is a whole number from 1 to 100 (got {value!r})")
    return int(value)
