"""Who may be offered a conversation, and who is chosen (pure functions over the state).

Modes (tenant setting ``routing_mode``):
- ``broadcast``: every eligible agent with room gets the offer; first accept wins.
- ``round_robin``: one agent, the next one (by agent id, cyclically) after the last agent
  offered a conversation alone.
- ``least_busy``: one agent, the one with the fewest chats (engaged + offered), ties by id.

Eligible: online, connected, not removed, and covering the conversation's department and
channel through their permission groups. "Room": engaged chats plus standing offers below
their ``max_chats``, so one agent is never offered more than they could take.
"""

from agent_service.state import Agent, Conversation, Tenant

MODES = ("broadcast", "round_robin", "least_busy")


def is_available(agent: Agent) -> bool:
    return agent.status == "online" and agent.disconnected_at is None and not agent.removed


def load(agent: Agent) -> int:
    return len(agent.active) + len(agent.offers)


def has_room(tenant: Tenant, agent: Agent) -> bool:
    return load(agent) < tenant.capacity(agent)


def covers_department(tenant: Tenant, agent: Agent, department: str | None) -> bool:
    """Departments known to some group restrict to that group's members; unknown ones do not."""
    if department is None:
        return True
    owners = {g.group_id for g in tenant.groups.values() if department in g.departments}
    return not owners or bool(owners & set(agent.groups))


def covers_channel(tenant: Tenant, agent: Agent, channel: str) -> bool:
    """An agent whose every group lists channels only takes those channels."""
    groups = [tenant.groups[g] for g in agent.groups if g in tenant.groups]
    return not groups or any(not g.channels or channel in g.channels for g in groups)


def covers(tenant: Tenant, agent: Agent, conversation: Conversation) -> bool:
    return covers_department(tenant, agent, conversation.department) and covers_channel(
        tenant, agent, conversation.channel
    )


def anyone_online_for(tenant: Tenant, conversation: Conversation) -> bool:
    return any(is_available(a) and covers(tenant, a, conversation) for a in tenant.agents.values())


def may_be_offered(tenant: Tenant, agent: Agent, conversation: Conversation) -> bool:
    """Eligible for ``conversation`` and with room for one more."""
    return is_available(agent) and has_room(tenant, agent) and covers(tenant, agent, conversation)


def candidates(tenant: Tenant, conversation: Conversation, exclude: set[str]) -> list[Agent]:
    """Eligible agents with room, sorted by id."""
    found = [
        agent
        for agent in tenant.agents.values()
        if agent.agent_id not in exclude and may_be_offered(tenant, agent, conversation)
    ]
    return sorted(found, key=lambda a: a.agent_id)


def next_after(agent_ids: list[str], last: str | None) -> str:
    """Round robin over ids sorted: the first id after ``last``, wrapping around."""
    later = [agent_id for agent_id in agent_ids if last is None or agent_id > last]
    return (later or agent_ids)[0]


def choose(tenant: Tenant, conversation: Conversation) -> tuple[str, ...]:
    """The agents to offer ``conversation`` to now; empty when nobody eligible has room.

    Agents who declined are never asked again; agents whose offer timed out are asked
    again only when nobody else can be.
    """
    pool = candidates(tenant, conversation, conversation.declined_by | conversation.expired_for)
    if not pool:
        pool = candidates(tenant, conversation, conversation.declined_by)
    if not pool:
        return ()
    mode = tenant.settings["routing_mode"]
    if mode == "round_robin":
        return (next_after([a.agent_id for a in pool], tenant.last_single_offer),)
    if mode == "least_busy":
        return (min(pool, key=lambda a: (load(a), a.agent_id)).agent_id,)
    return tuple(a.agent_id for a in pool)


def transfer_targets(
    tenant: Tenant, conversation: Conversation, to_agent_id: str | None, to_group: str | None
) -> tuple[str, ...]:
    """Available agents with room for a transfer: the named agent, or a group's members.

    The department check is skipped on purpose: moving a chat to another department's
    agents is what a transfer is for.
    """
    pool = [
        agent
        for agent in tenant.agents.values()
        if agent.agent_id != conversation.agent_id
        and is_available(agent)
        and has_room(tenant, agent)
        and (agent.agent_id == to_agent_id or _in_group(tenant, agent, to_group))
    ]
    return tuple(sorted(a.agent_id for a in pool))


def _in_group(tenant: Tenant, agent: Agent, group: str | None) -> bool:
    if group is None:
        return False
    if group in agent.groups:
        return True
    owners = {g.group_id for g in tenant.groups.values() if group in g.departments}
    return bool(owners & set(agent.groups))
