"""BillingService: folds the log into the ledger, closes periods, issues invoices, answers.

The ledger lives in memory and is rebuilt from the log on every start (the log is the
record; nothing else is needed to bill). Invoices are computed by the fold when a
``billing.period_closed`` event is applied and published with an id derived from tenant and
period, so issuing twice (a crash between compute and publish) is one invoice. Commands
are decided by the decider runtime (relaydesk/decider.py) with billing's decider
(``decider.py``).
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import structlog
from aio_pika.abc import AbstractChannel

from billing_service.decider import BILLING_ACTOR, SERVICE, BillingDecider, period_close_id
from billing_service.invoices import due_date, invoice_html
from billing_service.ledger import Ledger, TenantBilling
from billing_service.payments import ManualProvider, PaymentProvider
from contracts import Envelope
from contracts.envelope import LoggedEvent
from contracts.events.billing import InvoiceIssued, PeriodClosed
from contracts.plan_limits import reason
from contracts.plans import LIMIT_KEYS, PlanCatalogue, period_of
from contracts.replies import CommandReply
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.catch_up import catch_up
from relaydesk.bus.rpc import RemoteError, serve_commands, serve_queries
from relaydesk.decider import DeciderRuntime
from relaydesk.settings import Settings

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


def _previous_periods(since: date, today: date) -> list[str]:
    """Every month from ``since``'s up to (not including) today's."""
    periods, year, month = [], since.year, since.month
    while (year, month) < (today.year, today.month):
        periods.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return periods


# What each limit is measured against: the count its owner checks when it refuses.
USED_FOR_LIMIT = {
    "agent_seats": "agents",
    "conversations_per_month": "conversations",
    "connectors": "connectors",
}


def _limits(plan: Any, used: dict[str, int]) -> list[dict[str, Any]]:
    """Limit vs used for the admin's billing page, with the refusal's reason once reached."""
    rows = []
    for key in LIMIT_KEYS:
        limit, count = plan.limit(key), used.get(USED_FOR_LIMIT[key], 0)
        reached = limit is not None and count >= limit
        rows.append(
            {
                "limit": key,
                "value": limit,
                "used": count,
                "reached": reached,
                "reason": reason(plan, key, limit) if reached and limit is not None else None,
            }
        )
    return rows


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
        self.catalogue = PlanCatalogue.load(settings.plans_file)
        self.ledger = Ledger(self.catalogue)
        self._clock = clock
        self.decider = BillingDecider(
            self.ledger, {provider.method: provider for provider in payments}, clock=clock
        )
        self._runtime = DeciderRuntime(self.decider, self._publish_decision)
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
            await serve_commands(self.bus, SERVICE, self.handle_command),
            await serve_queries(self.bus, SERVICE, self._answer),
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

    async def _publish_decision(self, events: Sequence[Envelope]) -> None:
        assert self.bus is not None, "start() first"
        await self.bus.publish_many(events)

    async def _publish(
        self, tenant: str, type_name: str, data: dict[str, Any], *, event_id: str
    ) -> Envelope:
        """Billing's own events outside commands (invoices, periodic closes): ids derived."""
        assert self.bus is not None
        envelope = Envelope(
            id=event_id,
            type=type_name,
            tenant=tenant,
            stream=f"billing:{tenant}",
            actor=BILLING_ACTOR,
            data=data,
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
                        event_id=period_close_id(state.tenant, period),
                    )

    async def _close_periods_forever(self) -> None:
        while True:
            try:
                await self.close_finished_periods()
            except Exception as exc:  # noqa: BLE001 - the next round retries; closing is idempotent
                log.error("period_close_failed", error=type(exc).__name__)
            await asyncio.sleep(self._close_check_s)

    # --- commands (this service is their single writer: see decider.py) ---------------

    async def handle_command(self, command: Envelope) -> CommandReply:
        return await self._runtime.handle(command)

    # --- queries ------------------------------------------------------------------

    async def _answer(self, name: str, params: dict[str, Any]) -> Any:
        tenant = params.get("tenant")
        if name == "billing.plans":
            return [plan.public() for plan in self.catalogue.plans.values()]
        if name == "billing.recompute":
            return {"differences": self.ledger.differences(), "position": self.ledger.position}
        state = self.ledger.tenants.get(tenant) if isinstance(tenant, str) else None
        if state is None or state.mode != "saas":
            raise RemoteError("not_found", "billing applies to SaaS accounts only")
        if name == "billing.account":
            return self.account(state)
        if name == "billing.invoice":
            invoice = state.invoices.get(str(params.get("number")))
            if invoice is None:
                raise RemoteError("not_found", "no such invoice")
            return {
                **invoice,
                "due_date": due_date(invoice).isoformat(),
                "html": invoice_html(state.tenant, invoice),
            }
        raise RemoteError("unknown_query", f"billing has no query {name!r}")

    def account(self, state: TenantBilling) -> dict[str, Any]:
        now = self._clock()
        period = period_of(now)
        plan = self.catalogue.get(state.plan_on(now.date(), self.catalogue))
        usage = state.usage.get(period)
        used = (
            usage.public()
            if usage
            else {"conversations": 0, "messages": 0, "connector_messages": 0, "agent_seats": 0}
        )
        used["connectors"] = len(state.connectors)
        used["agents"] = len(
            state.agents
        )  # seats taken now (agent_seats above: agents online this period, billed)
        limit = plan.limit("conversations_per_month")
        blocked = None
        if limit is not None and used["conversations"] >= limit:
            blocked = (
                f"The {plan.name} plan's limit of {limit} conversations in {period} is reached:"
                " new visitors are told the chat is unavailable. Change the plan to lift it."
            )
        today = now.date()
        invoices = [
            {
                **i,
                "due_date": due_date(i).isoformat(),
                "status": "paid"
                if i["paid_cents"] >= i["total_cents"]
                else ("overdue" if due_date(i) < today else "open"),
            }
            for i in state.invoices.values()
        ]
        return {
            "tenant": state.tenant,
            "period": period,
            "plan": plan.public(),
            "usage": used,
            "blocked": blocked,
            "limits": _limits(plan, used),
            "invoices": invoices,
            "balance_cents": state.balance_cents(),
            "overdue": any(i["status"] == "overdue" for i in invoices),
        }
