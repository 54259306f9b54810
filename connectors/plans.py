"""The tenants' plans as the connectors service sees them (folded from the log).

This service is the single writer of ``connector.configured``, so the plan's
``connectors`` limit is checked here against a fold it keeps itself.
"""

from datetime import date
from typing import Any

from contracts.envelope import LoggedEvent
from contracts.plan_limits import PLAN_EVENTS, TenantPlan


class TenantPlans:
    def __init__(self) -> None:
        self._by_tenant: dict[str, TenantPlan] = {}
        self._seen: set[str] = set()  # a publisher's retry must not add a subscription twice

    def apply(self, event: LoggedEvent) -> None:
        env = event.envelope
        if env.type not in PLAN_EVENTS or env.id in self._seen:
            return
        self._seen.add(env.id)
        self._by_tenant.setdefault(env.tenant, TenantPlan()).apply(env.type, env.data)

    def state(self) -> dict[str, Any]:
        """The plans and the plan events' ids seen, as plain data (a snapshot's)."""
        plans = [
            [tenant, plan.mode, [[day.isoformat(), plan_id] for day, plan_id in plan.subscriptions]]
            for tenant, plan in self._by_tenant.items()
        ]
        return {"plans": plans, "seen": sorted(self._seen)}

    def restore(self, state: dict[str, Any]) -> None:
        for tenant, mode, subscriptions in state["plans"]:
            days = [(date.fromisoformat(day), plan_id) for day, plan_id in subscriptions]
            self._by_tenant[tenant] = TenantPlan(mode=mode, subscriptions=days)
        self._seen = set(state["seen"])

    def get(self, tenant: str) -> TenantPlan | None:
        return self._by_tenant.get(tenant)
