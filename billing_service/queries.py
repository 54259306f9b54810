"""Billing queries (contracts/queries/billing.py): plans, a tenant's account, invoices."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from billing_service.invoices import due_date, invoice_html
from billing_service.ledger import Ledger, TenantBilling
from contracts.plan_limits import reason
from contracts.plans import LIMIT_KEYS, Plan, PlanCatalogue, period_of
from contracts.queries.billing import (
    Account,
    AccountInvoice,
    AccountQuery,
    InvoiceDocument,
    InvoiceQuery,
    LimitUse,
    PlanInfo,
    PlansQuery,
    Recomputed,
    RecomputeQuery,
    Usage,
)
from relaydesk.bus.rpc import RemoteError
from relaydesk.queries import answers

# What each limit is measured against: the count its owner checks when it refuses.
USED_FOR_LIMIT = {
    "agent_seats": "agents",
    "conversations_per_month": "conversations",
    "connectors": "connectors",
}


def _limits(plan: Plan, used: dict[str, int]) -> list[LimitUse]:
    """Limit vs used for the admin's billing page, with the refusal's reason once reached."""
    rows = []
    for key in LIMIT_KEYS:
        limit, count = plan.limit(key), used.get(USED_FOR_LIMIT[key], 0)
        reached = limit is not None and count >= limit
        rows.append(
            LimitUse(
                limit=key,
                value=limit,
                used=count,
                reached=reached,
                reason=reason(plan, key, limit) if reached and limit is not None else None,
            )
        )
    return rows


class BillingQueries:
    """Answers the ``billing`` queries from the ledger billing_service folds.

    Args:
        clock: now (UTC): the current period, due dates and overdue invoices.
    """

    def __init__(
        self, ledger: Ledger, catalogue: PlanCatalogue, clock: Callable[[], datetime]
    ) -> None:
        self._ledger = ledger
        self._catalogue = catalogue
        self._clock = clock

    def _saas(self, tenant: str) -> TenantBilling:
        state = self._ledger.tenants.get(tenant)
        if state is None or state.mode != "saas":
            raise RemoteError("not_found", "billing applies to SaaS accounts only")
        return state

    @answers(PlansQuery)
    def plans(self, query: PlansQuery) -> list[PlanInfo]:
        return [PlanInfo(**plan.public()) for plan in self._catalogue.plans.values()]

    @answers(RecomputeQuery)
    def recompute(self, query: RecomputeQuery) -> Recomputed:
        return Recomputed(differences=self._ledger.differences(), position=self._ledger.position)

    @answers(InvoiceQuery)
    def invoice(self, query: InvoiceQuery) -> InvoiceDocument:
        state = self._saas(query.tenant)
        invoice = state.invoices.get(query.number)
        if invoice is None:
            raise RemoteError("not_found", "no such invoice")
        return InvoiceDocument(
            **invoice,
            due_date=due_date(invoice).isoformat(),
            html=invoice_html(state.tenant, invoice),
        )

    @answers(AccountQuery)
    def account(self, query: AccountQuery) -> Account:
        state = self._saas(query.tenant)
        now = self._clock()
        period = period_of(now)
        plan = self._catalogue.get(state.plan_on(now.date(), self._catalogue))
        usage = state.usage.get(period)
        used: dict[str, Any] = (
            usage.public()
            if usage
            else {"conversations": 0, "messages": 0, "connector_messages": 0, "agent_seats": 0}
        )
        used["connectors"] = len(state.connectors)
        # seats taken now (agent_seats above: agents online this period, billed)
        used["agents"] = len(state.agents)
        limit = plan.limit("conversations_per_month")
        blocked = None
        if limit is not None and used["conversations"] >= limit:
            blocked = (
                f"The {plan.name} plan's limit of {limit} conversations in {period} is reached:"
                " new visitors are told the chat is unavailable. Change the plan to lift it."
            )
        today = now.date()
        invoices = [
            AccountInvoice(
                **i,
                due_date=due_date(i).isoformat(),
                status="paid"
                if i["paid_cents"] >= i["total_cents"]
                else ("overdue" if due_date(i) < today else "open"),
            )
            for i in state.invoices.values()
        ]
        return Account(
            tenant=state.tenant,
            period=period,
            plan=PlanInfo(**plan.public()),
            usage=Usage(**used),
            blocked=blocked,
            limits=_limits(plan, used),
            invoices=invoices,
            balance_cents=state.balance_cents(),
            overdue=any(i.status == "overdue" for i in invoices),
        )
