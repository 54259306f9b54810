"""Billing's decider: plan changes, period closes and payments over the ledger.

The ledger is exactly the log folded up to a position (an invoice is computed at the
point of the log where its period closed), so billing's own events are folded only when
the log hands them back, never ahead of it; their replies are recorded at once by the
runtime. A payment provider's confirmation is I/O: it happens in :meth:`prepare`, and the
pure decision checks what the provider confirmed against what is outstanding.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import structlog

from billing_service.ledger import SERVICE, Ledger, TenantBilling
from billing_service.payments import Payment, PaymentProvider, PaymentRefused
from contracts.commands import billing as commands
from contracts.commands.billing import ChangePlan, ClosePeriod, RecordPayment
from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events.billing import PaymentRecorded, PeriodClosed, SubscriptionChanged
from contracts.ids import derive_event_id
from contracts.plans import PlanCatalogue, period_of
from contracts.replies import CommandReply
from relaydesk.decider import Decider, Decision, Handler, Rejected, utc_now

log = structlog.get_logger(__name__)

BILLING_ACTOR = Actor(kind=ActorKind.system, id="billing")
BillingDecision = Decision[Ledger]


def period_close_id(tenant: str, period: str) -> str:
    """One id per (tenant, period), shared by the close command and the periodic closer."""
    return derive_event_id(tenant, "billing", f"close:{period}")


def period_end(period: str) -> date:
    """The day after a period (``YYYY-MM``): the 1st of the next month, when it is over."""
    year, month = (int(part) for part in period.split("-"))
    return date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)


def saas_account(d: BillingDecision) -> TenantBilling:
    state = d.state.tenants.get(d.command.tenant)
    if state is None or state.mode != "saas":
        raise Rejected("not_found", "billing applies to SaaS accounts only")
    return state


def change_plan(d: BillingDecision, cmd: commands.ChangePlan) -> None:
    state = saas_account(d)
    catalogue = d.state.catalogue
    if cmd.plan not in catalogue.plans:
        raise Rejected("invalid_payload", f"unknown plan {cmd.plan!r}")
    today = d.now.date()
    effective = cmd.effective or today
    if effective < today:
        # The days gone by were had on the plan of their day: a change dated back would
        # rewrite what they cost (a downgrade dated to the 1st made a month on Business free).
        raise Rejected(
            "invalid_payload",
            f"effective: {effective.isoformat()} has passed; a plan change takes effect "
            f"today ({today.isoformat()}) or later",
        )
    data = {
        "plan": cmd.plan,
        "previous_plan": state.plan_on(effective, catalogue),
        "effective": effective.isoformat(),
    }
    d.emit(SubscriptionChanged.TYPE, data)


def close_period(d: BillingDecision, cmd: commands.ClosePeriod) -> None:
    state = saas_account(d)
    if cmd.period in state.closed:
        d.reply_data["already_closed"] = True
        return
    if cmd.period > period_of(d.now):
        # its invoice would charge a month nobody has had yet, and the month itself could
        # never be closed again when it ends
        raise Rejected(
            "invalid_payload",
            f"period: {cmd.period} has not begun (this month is {period_of(d.now)})",
        )
    if cmd.period == period_of(d.now):
        # its invoice would charge the usage so far; what the rest of the month used (and a
        # plan change later in it) would fall in no invoice: the month is closed, and the
        # periodic closer leaves closed months alone
        ends = period_end(cmd.period)
        raise Rejected(
            "invalid_payload",
            f"period: {cmd.period} has not ended (it ends on {ends.isoformat()});"
            " a month is closed once it is over",
        )
    if state.created is not None and cmd.period < period_of(state.created):
        # an invoice of nothing, numbered ahead of the account's real first one
        raise Rejected(
            "invalid_payload",
            f"period: {cmd.period} is before the account existed"
            f" (it began on {state.created.isoformat()})",
        )
    d.emit(
        PeriodClosed.TYPE,
        {"period": cmd.period},
        event_id=period_close_id(d.command.tenant, cmd.period),
    )


def record_payment(d: BillingDecision, cmd: commands.RecordPayment) -> None:
    """Record what the provider confirmed (``d.context``), never more than is outstanding."""
    invoice = saas_account(d).invoices[cmd.number]
    payment = d.context
    assert isinstance(payment, Payment), "prepare() confirms the payment first"
    outstanding = invoice["total_cents"] - invoice["paid_cents"]
    if payment.amount_cents > outstanding:
        raise Rejected(
            "invalid_payload", f"only {outstanding} cents are outstanding on {cmd.number}"
        )
    data = {
        "invoice_id": invoice["invoice_id"],
        "amount_cents": payment.amount_cents,
        "method": payment.method,
        "reference": payment.reference,
    }
    d.emit(PaymentRecorded.TYPE, data)


HANDLERS: dict[str, Handler[BillingDecision]] = {
    ChangePlan.TYPE: change_plan,
    ClosePeriod.TYPE: close_period,
    RecordPayment.TYPE: record_payment,
}


class BillingDecider(Decider[BillingDecision]):
    """Decides the ``billing`` commands.

    Args:
        ledger: the billing ledger, folded from the log by the service.
        payments: the payment providers, by their ``method``.
        clock: the decision time (a plan change's default effective date).
    """

    service = SERVICE
    handlers = HANDLERS

    def __init__(
        self,
        ledger: Ledger,
        payments: Mapping[str, PaymentProvider],
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.ledger = ledger
        self._payments = payments
        self._clock = clock

    @property
    def catalogue(self) -> PlanCatalogue:
        return self.ledger.catalogue

    @property
    def replies(self) -> dict[str, CommandReply]:
        return self.ledger.replies

    def decision(self, command: Envelope, context: object) -> BillingDecision:
        return Decision(
            SERVICE,
            self.ledger,
            command,
            now=self._clock(),
            stream=lambda _: f"billing:{command.tenant}",
            actor=BILLING_ACTOR,
            context=context,
        )

    def fold(self, event: Envelope) -> None:
        """Nothing ahead of the log: the ledger folds billing's events where the log has them."""

    async def prepare(self, command: Envelope, payload: Any) -> object:
        """For a payment: the invoice exists and its provider confirms what was paid."""
        if not isinstance(payload, RecordPayment):
            return None
        state = self.ledger.tenants.get(command.tenant)
        if state is None or state.mode != "saas":
            raise Rejected("not_found", "billing applies to SaaS accounts only")
        invoice = state.invoices.get(payload.number)
        if invoice is None:
            raise Rejected("not_found", f"no invoice {payload.number}")
        provider = self._payments.get(payload.method)
        if provider is None:
            raise Rejected("invalid_payload", f"no payment provider {payload.method!r}")
        try:
            return await provider.confirm(payload, command.actor, invoice)
        except PaymentRefused as exc:
            raise Rejected(exc.code, exc.message) from None

    async def after(self, events: Sequence[Envelope]) -> None:
        for event in events:
            if event.type == PaymentRecorded.TYPE:
                log.info(
                    "payment_recorded",
                    tenant=event.tenant,
                    invoice_id=event.data["invoice_id"],
                    method=event.data["method"],
                    amount_cents=event.data["amount_cents"],
                )
