"""BillingService: folds the log into the ledger, closes periods, issues invoices, answers.

The ledger lives in memory and is rebuilt from the log on every start (the log is the
record; nothing else is needed to bill). Invoices are computed by the fold when a
``billing.period_closed`` event is applied and published with an id derived from tenant and
period, so issuing twice (a crash between compute and publish) is one invoice.
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel

from billing_service.ledger import Ledger, TenantBilling
from billing_service.payments import ManualProvider, PaymentProvider, PaymentRefused
from billing_service.queries import BillingQueries
from contracts import Actor, Envelope, derive_event_id
from contracts.commands.billing import ChangePlan, ClosePeriod, RecordPayment
from contracts.envelope import ActorKind, LoggedEvent
from contracts.errors import ContractError
from contracts.events.billing import (
    InvoiceIssued,
    PaymentRecorded,
    PeriodClosed,
    SubscriptionChanged,
)
from contracts.plans import PlanCatalogue
from contracts.registry import COMMANDS
from contracts.replies import CommandReply
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.rpc import serve_commands, serve_queries
from relaydesk.queries import QueryAnswers
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

SERVICE = "billing"
BILLING_ACTOR = Actor(kind=ActorKind.system, id="billing")
Clock = Callable[[], datetime]


def _previous_periods(since: date, today: date) -> list[str]:
    """Every month from ``since``'s up to (not including) today's."""
    periods, year, month = [], since.year, since.month
    while (year, month) < (today.year, today.month):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return periods


class BillingService:
    """Args:
    clock: now (UTC), for period closes, due dates and plan changes.
    close_check_s: how often ended months are looked for.
    payments: the payment providers, by their ``method`` (default: the manual one only).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = lambda: datetime.now(UTC),
        close_check_s: float = 60.0,
        payments: Sequence[PaymentProvider] = (ManualProvider(),),
    ) -> None:
        self.settings = settings
        self._payments = {provider.method: provider for provider in payments}
        self.catalogue = PlanCatalogue.load(settings.plans_file)
        self.ledger = Ledger(self.catalogue)
        self._clock = clock
        self._close_check_s = close_check_s
        self.bus: Bus | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._channels: list[AbstractChannel] = []
        self._issuing = asyncio.Lock()

    async def start(self) -> None:
        self.bus = await Bus(
            self.settings.amqp_url, service=SERVICE, stream_url=self.settings.stream_url
        ).connect()
        reader = await LogReader(self.bus, start="first", name=SERVICE).open()
        position = await catch_up(self.bus, reader, self._apply, service=SERVICE)
        await self._issue_pending()
        self._tasks = [
            asyncio.create_task(self._follow(reader)),
            asyncio.create_task(self._close_periods_forever()),
        ]
        self._channels = [
            await serve_commands(self.bus, SERVICE, self._decide),
            await serve_queries(
                self.bus,
                SERVICE,
                QueryAnswers(
                    SERVICE, BillingQueries(self.ledger, self.catalogue, self._clock)
                ).handle,
            ),
        ]
        log.info("billing_service_started", position=position, tenants=len(self.ledger.tenants))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.bus:
            await self.bus.close()

    async def _apply(self, batch: list[LoggedEvent]) -> None:
        for event in batch:
            self.ledger.apply(event.envelope, event.position)

    async def _follow(self, reader: LogReader) -> None:
        async for batch in reader.batches():
            await self._apply(batch)
            if any(e.envelope.type == PeriodClosed.TYPE for e in batch):
                await self._issue_pending()

    async def _publish(
        self, tenant: str, type_name: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> Envelope:
        assert self.bus is not None
        kwargs = {"id": event_id} if event_id else {}
        envelope = Envelope(
            type=type_name,
            tenant=tenant,
            stream=f"billing:{tenant}",
            actor=BILLING_ACTOR,
            data=data,
            **kwargs,
        )
        await self.bus.publish(envelope)
        return envelope

    async def _issue_pending(self) -> None:
        async with self._issuing:
            for tenant, invoice in self.ledger.unissued():
                await self._publish(
                    tenant, InvoiceIssued.TYPE, invoice, event_id=invoice["invoice_id"]
                )
                log.info(
                    "invoice_issued",
                    tenant=tenant,
                    number=invoice["number"],
                    period=invoice["period"],
                    total_cents=invoice["total_cents"],
                )

    async def close_finished_periods(self) -> None:
        """Publish ``billing.period_closed`` for every ended month of every SaaS tenant."""
        today = self._clock().date()
        for state in list(self.ledger.tenants.values()):
            if state.mode != "saas" or state.created is None:
                continue
            for period in _previous_periods(state.created, today):
                if period not in state.closed:
                    await self._publish(
                        state.tenant,
                        PeriodClosed.TYPE,
                        {"period": period},
                        event_id=derive_event_id(state.tenant, "billing", f"close:{period}"),
                    )

    async def _close_periods_forever(self) -> None:
        while True:
            try:
                await self.close_finished_periods()
            except Exception as exc:  # noqa: BLE001 - the next round retries; closing is idempotent
                log.error("period_close_failed", error=type(exc).__name__)
            await asyncio.sleep(self._close_check_s)

    # --- commands (this service is their single writer) ----------------------------------

    async def _decide(self, command: Envelope) -> CommandReply:
        payload = COMMANDS.parse_envelope(command)
        state = self.ledger.tenants.get(command.tenant)
        if state is None or state.mode != "saas":
            return CommandReply(
                ok=False, code="not_found", message="billing applies to SaaS accounts only"
            )
        if command.type == ChangePlan.TYPE:
            if payload.plan not in self.catalogue.plans:
                return CommandReply(
                    ok=False, code="invalid_payload", message=f"unknown plan {payload.plan!r}"
                )
            effective = payload.effective or self._clock().date()
            previous = state.plan_on(effective, self.catalogue)
            data = {
                "plan": payload.plan,
                "previous_plan": previous,
                "effective": effective.isoformat(),
            }
            event = await self._publish(
                command.tenant,
                SubscriptionChanged.TYPE,
                data,
                event_id=derive_event_id(command.tenant, command.actor.id, command.id),
            )
        elif command.type == ClosePeriod.TYPE:
            if payload.period in state.closed:
                return CommandReply(ok=True, data={"already_closed": True})
            event = await self._publish(
                command.tenant,
                PeriodClosed.TYPE,
                {"period": payload.period},
                event_id=derive_event_id(command.tenant, "billing", f"close:{payload.period}"),
            )
        elif command.type == RecordPayment.TYPE:
            return await self._record_payment(command, state, payload)
        else:
            raise ContractError(f"billing does not decide {command.type}")
        return CommandReply(ok=True, event_ids=(event.id,))

    async def _record_payment(
        self, command: Envelope, state: TenantBilling, request: Any
    ) -> CommandReply:
        invoice = state.invoices.get(request.number)
        if invoice is None:
            return CommandReply(ok=False, code="not_found", message=f"no invoice {request.number}")
        provider = self._payments.get(request.method)
        if provider is None:
            return CommandReply(
                ok=False, code="invalid_payload", message=f"no payment provider {request.method!r}"
            )
        try:
            payment = await provider.confirm(request, command.actor, invoice)
        except PaymentRefused as exc:
            return CommandReply(ok=False, code=exc.code, message=exc.message)
        outstanding = invoice["total_cents"] - invoice["paid_cents"]
        if (
            payment.amount_cents > outstanding
        ):  # checked on what the provider confirmed, not on what was asked
            return CommandReply(
                ok=False,
                code="invalid_payload",
                message=f"only {outstanding} cents are outstanding on {request.number}",
            )
        data = {
            "invoice_id": invoice["invoice_id"],
            "amount_cents": payment.amount_cents,
            "method": payment.method,
            "reference": payment.reference,
        }
        event = await self._publish(
            command.tenant,
            PaymentRecorded.TYPE,
            data,
            event_id=derive_event_id(command.tenant, command.actor.id, command.id),
        )
        log.info(
            "payment_recorded",
            tenant=command.tenant,
            number=request.number,
            method=payment.method,
            amount_cents=payment.amount_cents,
        )
        return CommandReply(ok=True, event_ids=(event.id,))
