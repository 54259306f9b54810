"""Billing events (SaaS mode): subscriptions, period close, invoices, payments."""

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import EventData, Id, ShortText


class SubscriptionChanged(EventData):
    TYPE = "billing.subscription_changed"
    DECIDED_BY = "billing"
    plan: Id
    previous_plan: Id | None = None
    effective: date


class PeriodClosed(EventData):
    """Scheduled: the month ``period`` (YYYY-MM) is over for this tenant."""

    TYPE = "billing.period_closed"
    DECIDED_BY = "billing"
    period: ShortText


class InvoiceLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    description: ShortText
    quantity: int
    unit_cents: int
    amount_cents: int


class InvoiceIssued(EventData):
    TYPE = "billing.invoice_issued"
    invoice_id: Id
    number: ShortText
    period: ShortText
    lines: tuple[InvoiceLine, ...]
    total_cents: int
    currency: ShortText = "USD"


class PaymentRecorded(EventData):
    TYPE = "billing.payment_recorded"
    DECIDED_BY = "billing"
    invoice_id: Id
    amount_cents: int = Field(gt=0)
    method: ShortText = "manual"
    reference: ShortText | None = None


MODELS = (SubscriptionChanged, PeriodClosed, InvoiceIssued, PaymentRecorded)
