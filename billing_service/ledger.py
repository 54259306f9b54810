"""The billing ledger: a pure fold of the event log (no I/O, no clock).

Usage is metered from the log itself (conversations started, messages, connector
messages, active agent seats), idempotent by event id. When ``billing.period_closed`` is
folded, the invoice for that period is computed *at that point of the log* and kept as
``computed``; the service publishes it as ``billing.invoice_issued``. Because the content
depends only on the log up to the close, recomputing from the log later yields the same
invoice to the cent, whether or not the service crashed in between.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import structlog

from billing_service.invoices import compute_invoice
from contracts.envelope import Envelope
from contracts.errors import ContractError
from contracts.events.admin import AgentCreated, AgentRemoved, AgentStatusChanged, TenantCreated
from contracts.events.billing import (
    InvoiceIssued,
    PaymentRecorded,
    PeriodClosed,
    SubscriptionChanged,
)
from contracts.events.connector import (
    ConnectorConfigured,
    ConnectorRemoved,
    InboundReceived,
    OutboundSent,
)
from contracts.events.conversation import ConversationMissed, ConversationRequested
from contracts.events.message import AttachmentSent, MessageSent
from contracts.plans import PlanCatalogue, period_of
from contracts.registry import EVENTS
from contracts.replies import CommandReply
from relaydesk.decider import record_answer
from relaydesk.dedupe import RECENT_IDS, SeenIds

log = structlog.get_logger(__name__)

SERVICE = "billing"  # whose command answers the ledger records (contracts/decisions.py)

MESSAGE_TYPES = frozenset({MessageSent.TYPE, AttachmentSent.TYPE})
CONNECTOR_TYPES = frozenset({InboundReceived.TYPE, OutboundSent.TYPE})


@dataclass
class PeriodUsage:
    conversations: int = 0
    messages: int = 0
    connector_messages: int = 0
    active_agents: set[str] = field(default_factory=set)

    def public(self) -> dict[str, int]:
        return {
            "conversations": self.conversations,
            "messages": self.messages,
            "connector_messages": self.connector_messages,
            "agent_seats": len(self.active_agents),
        }


@dataclass
class TenantBilling:
    tenant: str
    mode: str = "tool"
    created: date | None = None
    subscriptions: list[tuple[date, str]] = field(
        default_factory=list
    )  # (effective, plan) in log order
    usage: dict[str, PeriodUsage] = field(default_factory=dict)
    agents: set[str] = field(default_factory=set)
    connectors: set[str] = field(default_factory=set)
    closed: list[str] = field(default_factory=list)
    computed: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # period -> invoice computed at its close
    invoices: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # number -> issued invoice (+ paid_cents)

    def period_usage(self, period: str) -> PeriodUsage:
        return self.usage.setdefault(period, PeriodUsage())

    def plan_on(self, day: date, catalogue: PlanCatalogue) -> str:
        current = catalogue.default
        for (
            effective,
            plan,
        ) in self.subscriptions:  # log order: a later change for the same day wins
            if effective <= day:
                current = plan
        return current

    def balance_cents(self) -> int:
        return sum(i["total_cents"] - i["paid_cents"] for i in self.invoices.values())


Handler = Callable[[TenantBilling, Envelope, Any], None]


class Ledger:
    """Every tenant's billing state, folded from the log."""

    def __init__(
        self, catalogue: PlanCatalogue, seen_limit: int = RECENT_IDS, seen: Iterable[str] = ()
    ) -> None:
        """``seen_limit``: how many recent event ids are remembered for dedupe. Bounded, as
        every reader's (relaydesk/dedupe.py): copies land close together in the log, and the
        window moves with log order only, so a rebuild or replay drops the same copies.
        ``seen``: the window's ids, oldest first (a ledger restored from its snapshot)."""
        self.catalogue = catalogue
        self.tenants: dict[str, TenantBilling] = {}
        self._seen = SeenIds(seen, limit=seen_limit)
        self.position = -1
        self.replies: dict[str, CommandReply] = {}  # billing command id -> its reply
        self._handlers: dict[str, Handler] = {
            TenantCreated.TYPE: self._tenant_created,
            SubscriptionChanged.TYPE: self._subscription_changed,
            ConversationRequested.TYPE: self._conversation,
            ConversationMissed.TYPE: self._missed,
            AgentCreated.TYPE: self._agent_created,
            AgentRemoved.TYPE: self._agent_removed,
            AgentStatusChanged.TYPE: self._agent_status,
            ConnectorConfigured.TYPE: self._connector_configured,
            ConnectorRemoved.TYPE: self._connector_removed,
            PeriodClosed.TYPE: self._period_closed,
            InvoiceIssued.TYPE: self._invoice_issued,
            PaymentRecorded.TYPE: self._payment_recorded,
        }

    def tenant(self, tenant_id: str) -> TenantBilling:
        return self.tenants.setdefault(tenant_id, TenantBilling(tenant_id))

    def seen_ids(self) -> list[str]:
        """The dedupe window's ids, oldest first (what a snapshot keeps)."""
        return self._seen.latest(len(self._seen))

    def apply(self, envelope: Envelope, position: int) -> None:
        """Fold one event; a repeated event id (a publisher's retry) is counted once."""
        self.position = max(self.position, position)
        record_answer(self.replies, envelope, SERVICE)
        if envelope.id in self._seen:
            return
        handler = self._handlers.get(envelope.type)
        counted = envelope.type in MESSAGE_TYPES or envelope.type in CONNECTOR_TYPES
        if handler is None and not counted:
            return
        self._seen.add(envelope.id)
        state = self.tenant(envelope.tenant)
        if counted:
            usage = state.period_usage(period_of(envelope.occurred_at))
            if envelope.type in MESSAGE_TYPES:
                usage.messages += 1
            else:
                usage.connector_messages += 1
            return
        try:
            payload = EVENTS.parse_envelope(envelope)
        except ContractError as exc:
            log.warning(
                "billing_event_skipped",
                event_id=envelope.id,
                event_type=envelope.type,
                code=exc.code,
            )
            return
        assert handler is not None
        handler(state, envelope, payload)

    # --- folds -------------------------------------------------------------------

    def _tenant_created(self, state: TenantBilling, envelope: Envelope, event: Any) -> None:
        state.mode, state.created = event.mode, envelope.occurred_at.date()
        if event.plan:
            state.subscriptions.append((state.created, event.plan))

    def _subscription_changed(self, state: TenantBilling, _: Envelope, event: Any) -> None:
        state.subscriptions.append((event.effective, event.plan))

    def _conversation(self, state: TenantBilling, envelope: Envelope, _: Any) -> None:
        state.period_usage(period_of(envelope.occurred_at)).conversations += 1

    def _missed(self, state: TenantBilling, envelope: Envelope, event: Any) -> None:
        # Turned away over the plan's limit: recorded on the log, but not a conversation served.
        if event.reason == "over_limit":
            state.period_usage(period_of(envelope.occurred_at)).conversations -= 1

    def _agent_created(self, state: TenantBilling, _: Envelope, event: Any) -> None:
        state.agents.add(event.agent_id)

    def _agent_removed(self, state: TenantBilling, _: Envelope, event: Any) -> None:
        state.agents.discard(event.agent_id)

    def _agent_status(self, state: TenantBilling, envelope: Envelope, event: Any) -> None:
        # A seat is an agent who was online at least once in the period.
        if event.status == "online":
            state.period_usage(period_of(envelope.occurred_at)).active_agents.add(event.agent_id)

    def _connector_configured(self, state: TenantBilling, _: Envelope, event: Any) -> None:
        state.connectors.add(event.connector_id)

    def _connector_removed(self, state: TenantBilling, _: Envelope, event: Any) -> None:
        state.connectors.discard(event.connector_id)

    def _period_closed(self, state: TenantBilling, _: Envelope, event: Any) -> None:
        if event.period in state.closed or state.mode != "saas":
            return
        state.closed.append(event.period)
        state.computed[event.period] = compute_invoice(
            state, event.period, self.catalogue, sequence=len(state.computed) + 1
        )

    def _invoice_issued(self, state: TenantBilling, envelope: Envelope, event: Any) -> None:
        issued = event.model_dump(mode="json")
        state.invoices[event.number] = {
            **issued,
            "issued_at": envelope.occurred_at.isoformat(),
            "paid_cents": 0,
        }

    def _payment_recorded(self, state: TenantBilling, _: Envelope, event: Any) -> None:
        invoice = next(
            (i for i in state.invoices.values() if i["invoice_id"] == event.invoice_id), None
        )
        if invoice is not None:
            invoice["paid_cents"] += event.amount_cents

    # --- questions -----------------------------------------------------------------

    def unissued(self) -> list[tuple[str, dict[str, Any]]]:
        """Invoices computed at a period close but not (yet) on the log as issued."""
        return [
            (state.tenant, invoice)
            for state in self.tenants.values()
            for period, invoice in state.computed.items()
            if invoice["number"] not in state.invoices
        ]

    def differences(self) -> list[str]:
        """Issued invoices that differ from what the log recomputes (should be none)."""
        found = []
        for state in self.tenants.values():
            for period, computed in state.computed.items():
                issued = state.invoices.get(computed["number"])
                if issued is None:
                    found.append(
                        f"{state.tenant} {period}: computed {computed['number']} was never issued"
                    )
                    continue
                for key in ("period", "lines", "total_cents", "currency", "invoice_id"):
                    if issued[key] != computed[key]:
                        found.append(
                            f"{state.tenant} {computed['number']}: {key} issued {issued[key]!r}"
                            f" != recomputed {computed[key]!r}"
                        )
        return found
