"""Keeps one delivery worker running per webhook subscription in the admin state.

A paused subscription has no worker: pausing stops it (an attempt under way is cut off and
made again later), resuming starts it again at its stored position, so what was published
while it was paused is delivered then, in order (nothing is lost).
"""

import asyncio
from typing import Any

import httpx
import structlog
from pymongo.asynchronous.database import AsyncDatabase

from outbound_webhooks.documents import WEBHOOK_DOCUMENTS, WebhookDelivery
from outbound_webhooks.worker import FAILED, REFUSED, RetryPolicy, Subscription, WebhookWorker
from relaydesk.bus import Bus
from relaydesk.net_guard import GuardedTransport, TargetPolicy
from relaydesk.sealing import subscription_secret
from relaydesk.store import bind_documents, bound, descending, with_store_retry

log = structlog.get_logger(__name__)

RESTART_DELAY_S = 1.0
Key = tuple[str, str]


class WebhookDispatcher:
    """Args:
    policy: delivery timeout and retry backoff.
    targets: which addresses deliveries may reach (default: public ones only, https).
    """

    def __init__(
        self,
        bus: Bus,
        db: AsyncDatabase,
        secrets_key: str,
        policy: RetryPolicy | None = None,
        targets: TargetPolicy | None = None,
    ) -> None:
        self._bus, self._db, self._secrets_key = bus, db, secrets_key
        self._policy = policy or RetryPolicy()
        # Every connection goes through the address check, to the address checked; redirects
        # are not followed (a 3xx is a failed delivery, not a hop to wherever it points).
        self._http = httpx.AsyncClient(
            timeout=self._policy.timeout_s,
            transport=GuardedTransport(targets or TargetPolicy()),
            follow_redirects=False,
        )
        self._tasks: dict[Key, asyncio.Task[None]] = {}

    async def bind(self) -> None:
        """Bind the delivery log and positions to the database (at the service's start)."""
        await with_store_retry(lambda: bind_documents(self._db, WEBHOOK_DOCUMENTS))

    def sync(self, subscriptions: dict[Key, dict[str, Any]]) -> None:
        """Start workers for new or resumed subscriptions, stop those of removed or paused ones.

        Each subscription's ``since`` is a log position at or before its creation (where its
        worker starts when it has stored no position yet).
        """
        for key in set(self._tasks) - set(subscriptions):
            self._tasks.pop(key).cancel()
            log.info("webhook_worker_stopped", tenant=key[0], subscription_id=key[1])
        for key, sub in subscriptions.items():
            if key not in self._tasks:
                subscription = Subscription(
                    tenant=key[0],
                    subscription_id=key[1],
                    url=sub["url"],
                    event_types=frozenset(sub["event_types"]),
                    secret=subscription_secret(self._secrets_key, *key),
                )
                worker = WebhookWorker(
                    self._bus, self._db, subscription, self._http, self._policy, sub["since"]
                )
                self._tasks[key] = asyncio.create_task(self._keep_running(worker))

    async def _keep_running(self, worker: WebhookWorker) -> None:
        while True:
            try:
                await worker.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                # broker or store away longer than the retries: start again at the stored position
                log.exception(
                    "webhook_worker_crashed", subscription_id=worker.subscription.subscription_id
                )
                await asyncio.sleep(RESTART_DELAY_S)

    async def deliveries(
        self, tenant: str, subscription_id: str, limit: int = 100
    ) -> list[dict[str, Any]]:
        d = await bound(self._db, WebhookDelivery)
        query = d.find(d.tenant == tenant, d.subscription_id == subscription_id)
        ordered = query.sort(descending(d.position), descending(d.attempt)).limit(limit)
        return [
            {**delivery.public(), "error": _shown(delivery.error)} async for delivery in ordered
        ]

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        await self._http.aclose()


def _shown(error: str | None) -> str | None:
    """The error as the tenant sees it (entries written before the rule named the exception)."""
    return error if error in (None, REFUSED, FAILED) else FAILED
