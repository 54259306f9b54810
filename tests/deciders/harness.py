"""Each service's decider over a fresh state, without a broker: given events, when a command.

``given`` folds events into the state the way the service folds its log; ``when`` sends a
command through the real decider runtime, whose publish step keeps the events in memory
(the bus's own guarantees are tested in tests/foundation). Tests then read what was
published and the reply.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent_service import fold
from agent_service.admin.decider import AdminDecider
from agent_service.admin.state import AdminState
from agent_service.decider import RoutingDecider
from agent_service.state import RoutingState
from billing_service.decider import BillingDecider
from billing_service.ledger import Ledger
from billing_service.payments import ManualProvider
from connectors.config import ConnectorDirectory
from connectors.decider import ConnectorsDecider
from connectors.plans import TenantPlans
from contracts import Actor, Envelope, LoggedEvent
from contracts.plans import PlanCatalogue
from contracts.replies import CommandReply
from relaydesk.decider import Decider, DeciderRuntime
from relaydesk.sealing import SecretBox

TENANT = "acme"
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
OPERATOR = Actor(kind="admin", id="ops")
SYSTEM = Actor(kind="system", id="timer")
BOX = SecretBox("test-secrets-key")


def customer(visitor_id: str = "v1") -> Actor:
    return Actor(kind="customer", id=visitor_id)


def agent(agent_id: str) -> Actor:
    return Actor(kind="agent", id=agent_id)


def event(
    type_name: str,
    data: dict[str, Any],
    *,
    actor: Actor = OPERATOR,
    at: datetime = NOW,
    caused_by: str | None = None,
    stream: str = "tenant",
    tenant: str = TENANT,
) -> Envelope:
    """An event as it stands on the log."""
    return Envelope(
        type=type_name,
        tenant=tenant,
        stream=stream,
        actor=actor,
        occurred_at=at,
        causation_id=caused_by,
        data=data,
    )


def command(
    type_name: str, data: dict[str, Any], *, actor: Actor = OPERATOR, tenant: str = TENANT
) -> Envelope:
    return Envelope(type=type_name, tenant=tenant, stream="tenant", actor=actor, data=data)


@dataclass
class Published:
    """The runtime's publish step, in memory: what was published, in order."""

    events: list[Envelope] = field(default_factory=list)

    async def __call__(self, events: Sequence[Envelope]) -> None:
        self.events.extend(events)


@dataclass
class Desk:
    """One service's decider with its state; ``published`` holds what ``when`` published."""

    decider: Decider[Any]
    fold_logged: Callable[[Envelope, int], None]
    published: Published = field(default_factory=Published)
    position: int = 0

    def __post_init__(self) -> None:
        self.runtime = DeciderRuntime(self.decider, self.published)

    def given(self, *events: Envelope) -> "Desk":
        """Fold events into the state as the service folds its log."""
        for logged in events:
            self.position += 1
            self.fold_logged(logged, self.position)
        return self

    async def when(self, sent: Envelope) -> CommandReply:
        self.published.events.clear()
        return await self.runtime.handle(sent)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.published.events]

    def of(self, type_name: str) -> list[dict[str, Any]]:
        return [e.data for e in self.published.events if e.type == type_name]


class Clock:
    """A settable decision time."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def routing_desk(clock: Clock | None = None) -> Desk:
    state = RoutingState()
    decider = RoutingDecider(
        lambda: state,
        offer_timeout_s=60,
        grace_s=30,
        plans=PlanCatalogue.load(),
        clock=clock or Clock(),
    )
    return Desk(decider, lambda e, _: fold.apply(state, e))


def admin_desk(mode: str = "saas", clock: Clock | None = None) -> Desk:
    state = AdminState()
    decider = AdminDecider(state, mode=mode, catalogue=PlanCatalogue.load(), clock=clock or Clock())
    return Desk(decider, state.apply)


def billing_desk(clock: Clock | None = None) -> Desk:
    ledger = Ledger(PlanCatalogue.load())
    decider = BillingDecider(ledger, {"manual": ManualProvider()}, clock=clock or Clock())
    return Desk(decider, ledger.apply)


def connectors_desk(clock: Clock | None = None) -> Desk:
    directory, plans = ConnectorDirectory(BOX), TenantPlans()

    def fold_logged(envelope: Envelope, position: int) -> None:  # as connectors' LogFollower
        logged = LoggedEvent(position=position, envelope=envelope)
        directory.apply(logged)
        plans.apply(logged)

    decider = ConnectorsDecider(directory, BOX, plans, PlanCatalogue.load(), clock=clock or Clock())
    return Desk(decider, fold_logged)


DESKS: dict[str, Callable[[], Desk]] = {
    "agent": routing_desk,
    "admin": admin_desk,
    "billing": billing_desk,
    "connectors": connectors_desk,
}
