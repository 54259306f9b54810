"""The tenants' plans as the connectors service sees them (folded from the log).

This service is the single writer of ``connector.configured``, so the plan's
``connectors`` limit is checked here against a fold it keeps itself.
"""

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

    def get(self, tenant: str) -> TenantPlan | None:
        return self._by_tenant.get(tenant)
