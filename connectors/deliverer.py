"""Sends queued agent replies, one worker per connector so a down platform blocks nobody else.

Guarantee: each part of each reply reaches the platform at least once, in order. It arrives
twice in two cases only, which no Send API lets a sender prevent (none takes an idempotency
key): the process dies between the platform's answer and the Mongo write, or the answer is
lost after the platform processed the call (the retry is then a second copy; the rate equals
the rate of such losses, measured in docs/connectors.md). A reply's result is one
``connector.outbound_sent`` / ``connector.outbound_failed`` event per round with an id derived
from the message id, so a republish is absorbed by consumers. A permanent failure parks the
reply (and its conversation's later ones) instead of dropping it.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from connectors.breaker import CircuitBreaker
from connectors.config import Connector
from connectors.delivery import DeliveryError
from connectors.outbound_items import OutboundSender
from connectors.splitting import LIMITS, split_text
from connectors.store import ConnectorStore, Parked
from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events.connector import OutboundFailed, OutboundSent
from contracts.ids import derive_event_id
from relaydesk.bus import Bus
from relaydesk.metrics import CONNECTOR_SENDS, series

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
        self._deferred: dict[str, float] = {}  # connector → monotonic time its quota resets
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    def deferred_s(self, connector_id: str) -> float:
        """How long the connector sends nothing more because a quota ran out (0: it sends)."""
        return max(0.0, self._deferred.get(connector_id, 0.0) - time.monotonic())

    def resume(self, connector_id: str) -> None:
        """The connector was reconfigured: a quota deferral ends now (the admin may have
        cleared it); the caller unparked what its old credentials had parked, if they changed."""
        self._deferred.pop(connector_id, None)
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
        while (
            breaker.allows()
            and time.monotonic() >= self._deferred.get(connector_id, 0.0)
            and not self._paused(connector_id)  # replies wait in the outbox, in order
        ):
            await self._report_parked(connector_id)
            items = await self._store.pending(connector_id)
            if not items:
                return
            if breaker.state == "half_open":
                log.info("connector_breaker_half_open", connector_id=connector_id)
            parked = await self._store.parked(connector_id)
            for item in items:
                if not await self._deliver(item, breaker, parked):
                    return  # keep order: later replies wait behind the one that failed

    def _connector_for(self, item: dict[str, Any]) -> Connector | None:
        """The connector that may send this reply: the one it was queued for, of the same
        tenant and platform. Connector ids are global, so after a removal the id may belong to
        another tenant's bot: that one must never carry this tenant's replies."""
        connector = self._lookup(item["connector_id"])
        if connector is None:
            return None
        if (connector.tenant, connector.platform) != (item["tenant"], item["platform"]):
            return None
        return connector

    def _paused(self, connector_id: str) -> bool:
        connector = self._lookup(connector_id)
        return connector is not None and connector.paused

    async def _deliver(
        self, item: dict[str, Any], breaker: CircuitBreaker, parked: dict[str, Parked]
    ) -> bool:
        """False: stop this round (a transient failure; order is kept behind it)."""
        connector = self._connector_for(item)
        if connector is None or item.get("connector_removed"):
            await self._report(item, None, DeliveryError("connector removed", permanent=True))
            return True
        if connector.paused:  # paused during this round: the rest waits, in order
            return False
        held = hold_reason(parked, item["conversation_id"], item.get("queued_at") or 0.0)
        if held is not None:  # behind a parked reply: parked too, in its turn
            await self._park(item, connector, held)
            return True
        if "platform_message_id" not in item:  # not yet sent (a crash after sending skips this)
            try:
                await self._send_parts(connector, item)
            except DeliveryError as exc:
                series(
                    CONNECTOR_SENDS, connector.platform, "failed" if exc.permanent else "deferred"
                ).inc()
                if exc.unsendable:  # parking it would hold the chat for good
                    await self._report(item, connector, exc)
                    return True
                if exc.permanent:
                    self._succeeded(breaker, connector)  # the platform answered
                    kind = "credentials" if exc.credentials else "message"
                    parked.setdefault(
                        item["conversation_id"],
                        Parked(kind, item.get("queued_at") or 0.0, item["_id"]),
                    )
                    await self._park(item, connector, exc)
                    return True
                self._defer_or_count(connector, breaker, exc)
                if not item.get("failure_reported"):
                    await self._report(item, connector, exc, finish=False)
                return False
            series(CONNECTOR_SENDS, connector.platform, "sent").inc()
            self._succeeded(breaker, connector)
        await self._report(item, connector, None)
        return True

    def _defer_or_count(
        self, connector: Connector, breaker: CircuitBreaker, exc: DeliveryError
    ) -> None:
        if exc.defer_s is not None:  # a quota: nothing to learn from trying again before it resets
            self._deferred[connector.connector_id] = time.monotonic() + exc.defer_s
            log.warning(
                "connector_quota_exhausted",
                connector_id=connector.connector_id,
                reason=exc.reason,
                resumes_in_s=round(exc.defer_s),
            )
            return
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

    async def _send_parts(self, connector: Connector, item: dict[str, Any]) -> None:
        """Each part once, in order; each part's platform id is saved before the next is sent,
        so a restart resumes at the first part not yet sent (the body splits the same way).
        A file or a rating request is one part."""
        text_item = (item.get("kind") or "text") == "text"
        parts: list[str | None] = (
            list(split_text(item["body"], LIMITS[connector.platform])) if text_item else [None]
        )
        sent: list[str] = list(item.get("parts_sent") or [])
        if len(sent) >= len(parts):  # every part went out before a restart
            await self._store.mark(item["_id"], platform_message_id=sent[0])
        last_inbound = await self._store.last_inbound(item["tenant"], item["conversation_id"])
        for part in parts[len(sent) :]:
            send = partial(self._send, connector, item, part, last_inbound)
            sent.append(await self._send_to_chat(item, send))
            # the last part's write also marks the reply sent: one write, not two
            done = {"platform_message_id": sent[0]} if len(sent) == len(parts) else {}
            await self._store.mark(item["_id"], parts_sent=sent, **done)
        item["parts_sent"] = sent
        item["platform_message_id"] = sent[0]

    async def _send_to_chat(self, item: dict[str, Any], send: Callable[[], Awaitable[str]]) -> str:
        """``send()`` one part; where the platform says the chat has a new id (a Telegram group
        upgraded to a supergroup refuses sends to the old one), the conversation moves there
        with its queued replies and the part is sent there, once."""
        try:
            return await send()
        except DeliveryError as exc:
            if exc.moved_to is None or exc.moved_to == item["chat_ref"]:
                raise
            await self._store.move_chat(
                item["tenant"], item["connector_id"], item["chat_ref"], exc.moved_to
            )
            item["chat_ref"] = exc.moved_to  # what send() reads
            log.info("connector_chat_moved", connector_id=item["connector_id"])
            return await send()

    async def _park(self, item: dict[str, Any], connector: Connector, why: DeliveryError) -> None:
        """Kept, not dropped: parked, then reported (docs/connectors.md, "Parked replies").

        Parked first: a retry requested as soon as the report is seen must find it parked.
        A report lost to a crash or an outage is made up by the next round (``_report_parked``).
        """
        kind = "credentials" if why.credentials else "message"
        await self._store.mark(
            item["_id"],
            parked=True,
            parked_kind=kind,
            parked_reason=why.reason,
            parked_behind=why.behind,
            failure_reported=False,
        )
        await self._report(item, connector, why, finish=False, parked=True)

    async def _report_parked(self, connector_id: str) -> None:
        for item in await self._store.parked_unreported(connector_id):
            why = DeliveryError(
                item.get("parked_reason") or "refused",
                permanent=True,
                credentials=item.get("parked_kind") == "credentials",
                behind=item.get("parked_behind"),
            )
            await self._report(item, self._lookup(connector_id), why, finish=False, parked=True)

    @staticmethod
    def _succeeded(breaker: CircuitBreaker, connector: Connector) -> None:
        if breaker.state != "closed":
            log.info("connector_breaker_closed", connector_id=connector.connector_id)
        breaker.succeeded()

    async def _send(
        self,
        connector: Connector,
        item: dict[str, Any],
        text: str | None,
        last_inbound: float | None,
    ) -> str:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_retry_within_round),
            wait=_wait,
            stop=stop_after_attempt(ATTEMPTS_PER_ROUND),
            reraise=True,
        ):
            with attempt:
                return await self._sender.send(
                    connector, item, text=text, last_inbound=last_inbound
                )
        raise AssertionError("unreachable")

    async def _report(
        self,
        item: dict[str, Any],
        connector: Connector | None,
        error: DeliveryError | None,
        *,
        finish: bool = True,
        parked: bool = False,
    ) -> None:
        data: dict[str, Any] = {
            "connector_id": item["connector_id"],
            "platform": item["platform"],
            "conversation_id": item["conversation_id"],
            "message_id": item["_id"],
        }
        if error is None:
            ids = [i for i in item.get("parts_sent") or [] if i]
            kind = OutboundSent.TYPE
            data.update(
                platform_message_id=item.get("platform_message_id") or None,
                parts=max(1, len(item.get("parts_sent") or [])),
                platform_message_ids=ids,
            )
        else:
            kind = OutboundFailed.TYPE
            data.update(reason=error.reason, permanent=error.permanent, parked=parked)
            if parked:
                data.update(waits_for=error.waits_for, behind=error.behind)
        suffix = kind if finish else kind + (":parked" if parked else ":transient")
        if item.get("round"):  # a retried reply reports again: new ids, not a replay
            suffix += f":round{item['round']}"
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
            parked=parked,
        )


def hold_reason(
    parked: dict[str, Parked], conversation_id: str, queued_at: float
) -> DeliveryError | None:
    """Why a reply must wait without being tried, or None: its connector's credentials were
    refused, or an earlier reply of its conversation is parked (order is kept; a reply queued
    before the parked one — retried meanwhile — is not held behind it)."""
    if any(p.kind == "credentials" for p in parked.values()):
        return DeliveryError(
            "held: the platform refused this connector's credentials; change them to resume",
            permanent=True,
            credentials=True,
        )
    found = parked.get(conversation_id)
    if found is None or found.since > queued_at:
        return None
    return DeliveryError(
        "held: an earlier reply in this conversation failed; retry it to resume",
        permanent=True,
        behind=found.message_id or None,
    )


def _retry_within_round(exc: BaseException) -> bool:
    """Transient errors are retried at once — not a quota that resets hours from now."""
    return isinstance(exc, DeliveryError) and not exc.permanent and exc.defer_s is None
