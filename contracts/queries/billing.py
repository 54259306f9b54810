"""Queries answered by billing_service (service ``billing``): plans, accounts, invoices."""

from contracts.queries.base import Answer, Query, TenantQuery

SERVICE = "billing"


class PlanInfo(Answer):
    plan_id: str
    name: str
    price_cents: int
    currency: str
    limits: dict[
        str, int | None
    ]  # agent_seats, conversations_per_month, connectors (None: no limit)
    extra_seat_cents: int


class Usage(Answer):
    """This period's usage, and what is counted against the plan's limits now."""

    conversations: int
    messages: int
    connector_messages: int
    agent_seats: int  # agents online this period (billed)
    connectors: int  # configured now
    agents: int  # seats taken now


class LimitUse(Answer):
    limit: str  # a plan limit key
    value: int | None  # None: no limit
    used: int
    reached: bool
    reason: str | None  # what is refused now and why, once reached


class InvoiceLine(Answer):
    description: str
    quantity: int
    unit_cents: int
    amount_cents: int


class Invoice(Answer):
    invoice_id: str
    number: str
    period: str  # YYYY-MM
    lines: list[InvoiceLine]
    total_cents: int
    currency: str
    issued_at: str  # ISO 8601
    paid_cents: int
    due_date: str  # ISO date


class AccountInvoice(Invoice):
    status: str  # paid / open / overdue


class InvoiceDocument(Invoice):
    html: str  # the printable invoice


class Account(Answer):
    tenant: str
    period: str
    plan: PlanInfo
    usage: Usage
    blocked: str | None  # why new conversations are refused, when the plan's limit is reached
    limits: list[LimitUse]
    invoices: list[AccountInvoice]
    balance_cents: int
    overdue: bool


class Recomputed(Answer):
    differences: list[str]  # issued invoices that differ from what the log recomputes
    position: int


class PlansQuery(Query[list[PlanInfo]]):
    """The plan catalogue (the same for every tenant)."""

    NAME = "billing.plans"
    SERVICE = SERVICE


class RecomputeQuery(Query[Recomputed]):
    """Every tenant's invoices recomputed from the log (an operator's check)."""

    NAME = "billing.recompute"
    SERVICE = SERVICE


class AccountQuery(TenantQuery[Account]):
    """Plan, usage, limits and invoices; ``not_found`` for a tenant that is not SaaS."""

    NAME = "billing.account"
    SERVICE = SERVICE


class InvoiceQuery(TenantQuery[InvoiceDocument]):
    NAME = "billing.invoice"
    SERVICE = SERVICE
    number: str


QUERIES = (PlansQuery, RecomputeQuery, AccountQuery, InvoiceQuery)
