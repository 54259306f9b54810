"""Sends queued agent replies, one worker per connector so a down platform blocks nobody else.

Guarantee: each outbox item reaches the platform at least once and — unless the process dies
between the platform's answer and the Mongo write — exactly once; its result is one
``connector.outbound_sent`` / ``connector.outbound_failed`` event with an id derived from the
message id, so a republish is absorbed by consumers.
"""

import asyncio
import random
from collections.abc import Callable
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from connectors.breaker import CircuitBreaker
from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.outbound_items import OutboundSender
from connectors.store import ConnectorStore
from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events.connector import OutboundFailed, OutboundSent
from contracts.ids import derive_event_id
from relaydesk.bus import Bus

log = structlog.get_logger(__name__)

ATTEMPTS_PER_ROUND = 3
IDLE_RECHECK_S = 1.0


def _wait(retry_state: Any) -> float:
    """Exponential backoff with jitter, but the platform's retry_after wins when it gives one."""
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    if isinstance(exc, DeliveryError) and exc.retry_after is not None:
        return exc.retry_after
    return min(2.0, 0.1 * 2**retry_state.attempt_number) * (0.5 + random.random() / 2)


class Deliverer:
    def __init__(
        self,
        bus: Bus,
        store: ConnectorStore,
        sender: OutboundSender,
        lookup: Callable[[str], Connector | None],
        *,
        breaker_failures: int = 3,
        breaker_open_s: float = 5.0,
    ) -> None:
        self._bus = bus
        self._breaker_failures = breaker_failures
        self._breaker_open_s = breaker_open_s
        self._store = store
        self._sender = sender
        self._lookup = lookup
        self._breakers: dict[str, CircuitBreaker] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def breaker_state(self, connector_id: str) -> str:
        """``closed``, ``open`` (nothing is sent to that platform now) or ``half_open``."""
        return self._breaker(connector_id).state

    def _breaker(self, connector_id: str) -> CircuitBreaker:
        if connector_id not in self._breakers:
            self._breakers[connector_id] = CircuitBreaker(
                failures_to_open=self._breaker_failures, open_s=self._breaker_open_s
            )
        return self._breakers[connector_id]

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                for connector_id in await self._store.pending_connectors():
                    worker = self._workers.get(connector_id)
                    if worker is None or worker.done():
                        self._workers[connector_id] = asyncio.create_task(self._drain(connector_id))
            except Exception:
                log.exception("connector_outbox_scan_failed")
            try:
                await asyncio.wait_for(self._wake.wait(), IDLE_RECHECK_S)
            except TimeoutError:
                pass

    async def stop(self) -> None:
        for worker in self._workers.values():
            worker.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)

    async def _drain(self, connector_id: str) -> None:
        try:
            await self._drain_once(connector_id)
        except Exception:  # RabbitMQ or Mongo away: items stay queued, the next scan retries
            log.exception("connector_drain_failed", connector_id=connector_id)

    async def _drain_once(self, connector_id: str) -> None:
        breaker = self._breaker(connector_id)
        # Until the outbox is empty: a reply queued while this worker was busy goes out now,
        # not at the next idle rescan.
        while breaker.allows():
            items = await self._store.pending(connector_id)
            if not items:
                return
            if breaker.state == "half_open":
                log.info("connector_breaker_half_open", connector_id=connector_id)
            for item in items:
                if not await self._deliver(item, breaker):
                    return  # keep order: later replies wait behind the one that failed

    async def _deliver(self, item: dict[str, Any], breaker: CircuitBreaker) -> bool:
        connector = self._lookup(item["connector_id"])
        if connector is None:
            await self._report(item, None, DeliveryError("connector removed", permanent=True))
            return True
        if "platform_message_id" not in item:  # not yet sent (a crash after sending skips this)
            try:
                item["platform_message_id"] = await self._send(connector, item)
            except DeliveryError as exc:
                if exc.permanent:
                    self._succeeded(
                        breaker, connector
                    )  # the platform answered; only this message is bad
                    await self._report(item, connector, exc)
                    return True
                breaker.failed()
                log.warning(
                    "connector_send_deferred",
                    connector_id=connector.connector_id,
                    reason=exc.reason,
                    open_for=breaker.open_for,
                )
                if breaker.state == "open":
                    log.warning(
                        "connector_breaker_opened",
                        connector_id=connector.connector_id,
                        open_for=breaker.open_for,
                    )
                if not item.get("failure_reported"):
                    await self._report(item, connector, exc, finish=False)
                return False
            self._succeeded(breaker, connector)
            await self._store.mark(item["_id"], platform_message_id=item["platform_message_id"])
        await self._report(item, connector, None)
        return True

    @staticmethod
    def _succeeded(breaker: CircuitBreaker, connector: Connector) -> None:
        if breaker.state != "closed":
            log.info("connector_breaker_closed", connector_id=connector.connector_id)
        breaker.succeeded()

    async def _send(self, connector: Connector, item: dict[str, Any]) -> str:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and not e.permanent),
            wait=_wait,
            stop=stop_after_attempt(ATTEMPTS_PER_ROUND),
            reraise=True,
        ):
            with attempt:
                return await self._sender.send(connector, item)
        raise AssertionError("unreachable")

    async def _report(
        self,
        item: dict[str, Any],
        connector: Connector | None,
        error: DeliveryError | None,
        *,
        finish: bool = True,
    ) -> None:
        data: dict[str, Any] = {
            "connector_id": item["connector_id"],
            "platform": item["platform"],
            "conversation_id": item["conversation_id"],
            "message_id": item["_id"],
        }
        if error is None:
            kind, data["platform_message_id"] = (
                OutboundSent.TYPE,
                (item.get("platform_message_id") or None),
            )
        else:
            kind = OutboundFailed.TYPE
            data.update(reason=error.reason, permanent=error.permanent)
        suffix = kind if finish else kind + ":transient"
        await self._bus.publish(
            Envelope(
                id=derive_event_id(item["tenant"], item["connector_id"], f"{suffix}:{item['_id']}"),
                type=kind,
                tenant=item["tenant"],
                stream=f"conv:{item['conversation_id']}",
                actor=Actor(kind=ActorKind.connector, id=item["connector_id"]),
                data=data,
            )
        )
        if finish:
            await self._store.finish(item["_id"])
        else:
            await self._store.mark(item["_id"], failure_reported=True)
        log.info(
            "connector_outbound_result",
            connector_id=item["connector_id"],
            result=kind,
            permanent=error.permanent if error else None,
        )
