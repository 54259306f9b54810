"""The plan's ``agent_seats`` limit, checked on what an admin decision is about to emit.

This service is the single writer of ``agent.created``, so the seat limit bites here: a
SaaS tenant already using every seat of its plan gets ``plan_limit`` instead of a new
agent. The check runs on the emitted events rather than inside each handler so every way
an agent comes into being (the API, the CLI, a sign-up's owner) is counted alike.
"""

from datetime import date

from agent_service.admin.decisions import Emitted
from agent_service.admin.state import AdminState
from contracts.events.admin import AgentCreated
from contracts.plan_limits import LIMIT_CODE, refusal
from contracts.plans import PlanCatalogue
from relaydesk.decider import Rejected


def check_seats(
    state: AdminState, tenant: str, emitted: Emitted, catalogue: PlanCatalogue, today: date
) -> None:
    """Raise :class:`Rejected` (``plan_limit``) if ``emitted`` seats more agents than allowed."""
    t = state.tenants.get(tenant)
    if t is None or not t.exists:
        return  # a tenant being created (a sign-up's owner) starts with no agents
    active = {agent_id for agent_id, agent in t.agents.items() if not agent.removed}
    adding = {str(data["agent_id"]) for kind, data in emitted if kind == AgentCreated.TYPE} - active
    why = refusal(t.plan, catalogue, "agent_seats", len(active), today, adding=len(adding))
    if why is not None:
        raise Rejected(LIMIT_CODE, why)
