"""One subscription's delivery loop: from its stored position on, post matching events in order.

Guarantees: events are delivered one at a time in log order; a failed delivery is
retried with exponential backoff until it succeeds (nothing is skipped, so an endpoint
that was down catches up in order); every attempt is written to the delivery log (its
status, or only "refused"/"failed" when no answer came);
the position is stored after each delivered event, so a restart resumes after the last
delivered one (at-least-once: receivers dedupe by ``X-Relaydesk-Event-Id``).
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import httpx
import structlog
from pymongo.asynchronous.database import AsyncDatabase
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from contracts.envelope import Envelope, LoggedEvent
from contracts.events.admin import WebhookSubscribed
from outbound_webhooks.documents import WebhookDelivery, WebhookPosition
from outbound_webhooks.signing import SIGNATURE_HEADER, sign
from relaydesk.bus import Bus, LogReader
from relaydesk.dedupe import SeenIds
from relaydesk.metrics import WEBHOOK_DELIVERIES
from relaydesk.net_guard import RefusedTarget
from relaydesk.store import Checkpoints, bound, with_store_retry

log = structlog.get_logger(__name__)

RECENT_IDS = 10_000
# What the tenant's delivery log says when no HTTP answer came: never which exception or port,
# which would make the delivery log a scanner of whatever the URL points at.
REFUSED = "refused"  # the address is not one a tenant may reach (net_guard)
FAILED = "failed"  # no connection, timeout, broken answer


@dataclass(frozen=True)
class Subscription:
    tenant: str
    subscription_id: str
    url: str
    event_types: frozenset[str]
    secret: str

    @property
    def consumer(self) -> str:
        return f"webhook:{self.tenant}:{self.subscription_id}"

    def wants(self, event: Envelope) -> bool:
        return event.tenant == self.tenant and (
            "*" in self.event_types or event.type in self.event_types
        )

    def is_its_creation(self, event: Envelope) -> bool:
        return (
            event.type == WebhookSubscribed.TYPE
            and event.tenant == self.tenant
            and event.data.get("subscription_id") == self.subscription_id
        )


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 0.25
    max_s: float = 60.0
    timeout_s: float = 10.0


class DeliveryFailed(Exception):
    pass


class WebhookWorker:
    """Args:
    start_hint: a log position at or before the subscription's creation, used only
        when no position is stored yet (events before the creation are skipped).
    """

    def __init__(
        self,
        bus: Bus,
        db: AsyncDatabase,
        subscription: Subscription,
        http: httpx.AsyncClient,
        policy: RetryPolicy,
        start_hint: int | None = None,
    ) -> None:
        self._bus, self._db, self.subscription, self._http = bus, db, subscription, http
        self._policy, self._start_hint = policy, start_hint
        self._checkpoints = Checkpoints(db, WebhookPosition)
        self._active = False
        # A client's resend can put the same event id on the log twice: send it once.
        self._recent = SeenIds(limit=RECENT_IDS)

    async def run(self) -> None:
        sub = self.subscription
        stored = await with_store_retry(lambda: self._checkpoints.load(sub.consumer))
        self._active = stored is not None
        start = self._start(stored)
        log.info(
            "webhook_worker_started",
            tenant=sub.tenant,
            subscription_id=sub.subscription_id,
            start=start,
        )
        # Not measured: one reader per subscription would be a metric series per tenant's
        # subscription (docs/observability.md); their positions are in the delivery log.
        async with LogReader(
            self._bus, start=start, prefetch=200, name=sub.consumer, measured=False
        ) as reader:
            async for batch in reader.batches(max_batch=200):
                for logged in batch:
                    await self._handle(logged)
                if self._active:
                    await self._save(batch[-1].position)

    def _start(self, stored: int | None) -> int | Literal["first"]:
        if stored is not None:
            return stored + 1
        if self._start_hint is not None and self._start_hint >= 0:
            return self._start_hint
        return "first"

    async def _handle(self, logged: LoggedEvent) -> None:
        if not self._active:  # before the subscription existed: not ours to send
            self._active = self.subscription.is_its_creation(logged.envelope)
            return
        if self.subscription.wants(logged.envelope) and self._recent.first(logged.envelope.id):
            await self._deliver(logged)
            await self._save(logged.position)

    async def _save(self, position: int) -> None:
        await with_store_retry(lambda: self._checkpoints.save(self.subscription.consumer, position))

    async def _deliver(self, logged: LoggedEvent) -> None:
        policy = self._policy
        # No stop condition on purpose: an event is never dropped, the endpoint catches up later.
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=policy.initial_s, max=policy.max_s),
            retry=retry_if_exception_type(DeliveryFailed),
        ):
            with attempt:
                await self._attempt(logged, attempt.retry_state.attempt_number)

    async def _attempt(self, logged: LoggedEvent, number: int) -> None:
        event, sub = logged.envelope, self.subscription
        body = json.dumps(
            {"position": logged.position, "event": event.model_dump(mode="json")},
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(sub.secret, body),
            "X-Relaydesk-Event-Id": event.id,
            "X-Relaydesk-Event-Type": event.type,
        }
        status, error, why = None, None, None
        try:
            # the status is all we need: the receiver's body is not read
            async with self._http.stream(
                "POST", sub.url, content=body, headers=headers
            ) as response:
                status = response.status_code
        except RefusedTarget as exc:  # not a public address (any more: DNS may have changed)
            error, why = REFUSED, str(exc)
        except httpx.HTTPError as exc:
            error, why = FAILED, type(exc).__name__
        ok = status is not None and 200 <= status < 300
        WEBHOOK_DELIVERIES.labels(_outcome(ok, status, error)).inc()
        await self._record(logged, number, ok, status, error)
        if not ok:
            # the operator's log says why; the tenant's delivery log only "refused"/"failed"
            log.warning(
                "webhook_delivery_failed",
                subscription_id=sub.subscription_id,
                event_id=event.id,
                attempt=number,
                status=status,
                error=error,
                why=why,
            )
            raise DeliveryFailed(error or f"HTTP {status}")

    async def _record(
        self, logged: LoggedEvent, attempt: int, ok: bool, status: int | None, error: str | None
    ) -> None:
        sub, event = self.subscription, logged.envelope
        deliveries = await bound(self._db, WebhookDelivery)
        delivery = deliveries(
            tenant=sub.tenant,
            subscription_id=sub.subscription_id,
            event_id=event.id,
            event_type=event.type,
            position=logged.position,
            attempt=attempt,
            ok=ok,
            status=status,
            error=error,
            at=datetime.now(UTC),
        )
        await with_store_retry(delivery.insert)


def _outcome(ok: bool, status: int | None, error: str | None) -> str:
    """The delivery's ``outcome`` label (relaydesk/metrics.py)."""
    if ok:
        return "delivered"
    if status is not None:
        return "rejected"
    return REFUSED if error == REFUSED else FAILED
