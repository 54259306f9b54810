"""A SaaS tenant's plan folded from the log, and the words used when one of its limits bites.

Every single writer whose decision a plan limits folds the plan itself from the same two
events (``tenant.created``, ``billing.subscription_changed``): the admin service for agent
seats, the connectors service for connectors, routing for conversations. No decision
waits on a call to billing_service, and every refusal can be explained from the log.
"""

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.plans import Plan, PlanCatalogue

PLAN_EVENTS = frozenset({"tenant.created", "billing.subscription_changed"})
LIMIT_CODE = "plan_limit"  # the rejection code of every plan limit (HTTP 402 at the gateway)
NOUNS = {
    "agent_seats": "agent seats",
    "connectors": "connectors",
    "conversations_per_month": "conversations a month",
}
WHAT_IS_REFUSED = {
    "agent_seats": "adding an agent",
    "connectors": "configuring another connector",
    "conversations_per_month": "new conversations",
}


@dataclass
class TenantPlan:
    """Mode and subscription history of one tenant; tool-mode tenants have no limits."""

    mode: str = "tool"
    subscriptions: list[tuple[date, str]] = field(
        default_factory=list
    )  # (effective, plan) in log order

    def apply(self, type_name: str, data: dict[str, Any]) -> None:
        if type_name == "tenant.created":
            self.mode = str(data.get("mode") or "tool")
            if data.get("plan"):
                # The starting plan applies from the beginning of the account.
                self.subscriptions.append((date.min, str(data["plan"])))
        elif type_name == "billing.subscription_changed":
            effective = data["effective"]
            self.subscriptions.append(
                (
                    effective
                    if isinstance(effective, date)
                    else date.fromisoformat(str(effective)),
                    str(data["plan"]),
                )
            )

    def plan_on(self, day: date, catalogue: PlanCatalogue) -> Plan:
        current: str | None = None
        for (
            effective,
            plan_id,
        ) in self.subscriptions:  # a later change for the same day wins, as in billing
            if effective <= day:
                current = plan_id
        return catalogue.get(current)


def reason(plan: Plan, key: str, limit: int) -> str:
    """What an admin reads when ``key`` is used up (also shown on the billing page)."""
    return (
        f"The {plan.name} plan's limit {key} is {limit} {NOUNS.get(key, key)}:"
        f" {WHAT_IS_REFUSED.get(key, 'more')} is refused. Change the plan to raise it."
    )


def refusal(
    tenant: TenantPlan | None,
    catalogue: PlanCatalogue,
    key: str,
    used: int,
    day: date,
    adding: int = 1,
) -> str | None:
    """None when ``adding`` more fits the tenant's plan on ``day``; otherwise the reason why not."""
    if tenant is None or tenant.mode != "saas" or adding <= 0:
        return None
    plan = tenant.plan_on(day, catalogue)
    limit = plan.limit(key)
    if limit is None or used + adding <= limit:
        return None
    return reason(plan, key, limit)
