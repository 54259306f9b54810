"""Timed decisions (offer expiry, disconnect grace) sent back through our own command queue.

A timer never changes state itself: when it fires it sends a command to the ``agent``
queue, so the decision is taken by the single writer, in order with every other
command, and checked against the state at that moment (a stale timer is a no-op).
"""

import asyncio
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import structlog

from agent_service.decision import SYSTEM_ACTOR
from agent_service.state import RoutingState
from contracts.commands.conversation import ExpireOffers
from contracts.commands.routing import ExpireAgentDisconnect, ReleaseRemovedAgent
from contracts.envelope import Envelope
from contracts.events.admin import AgentRemoved
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationClosed,
    ConversationOffered,
    ConversationTransferred,
)
from contracts.events.routing import AgentConnectionLost
from relaydesk.bus.rpc import RequestTimeout, RpcClient

log = structlog.get_logger(__name__)

SERVICE = "agent"
MAX_RETRY_BACKOFF_S = 10
SETTLED = frozenset(
    {ConversationAccepted.TYPE, ConversationTransferred.TYPE, ConversationClosed.TYPE}
)


class Timers:
    """One pending task per (tenant, kind, subject); scheduling again replaces the old one."""

    def __init__(
        self,
        rpc: RpcClient,
        *,
        request_timeout_s: float,
        backoff: Callable[[int], float] = lambda attempt: min(2**attempt, MAX_RETRY_BACKOFF_S),
    ) -> None:
        """``backoff``: seconds to wait before resending a timer command after ``attempt``
        failed sends."""
        self._rpc = rpc
        self._request_timeout_s = request_timeout_s
        self._backoff = backoff
        self._tasks: dict[tuple[str, str, str], asyncio.Task[None]] = {}

    def schedule(
        self, tenant: str, command_type: str, subject: dict[str, str], due: datetime
    ) -> None:
        key = (tenant, command_type, next(iter(subject.values())))
        self.cancel(key)
        task = asyncio.create_task(self._fire(tenant, command_type, subject, due))
        self._tasks[key] = task
        task.add_done_callback(
            lambda done: self._tasks.pop(key, None) if self._tasks.get(key) is done else None
        )

    def cancel(self, key: tuple[str, str, str]) -> None:
        previous = self._tasks.pop(key, None)
        if previous is not None:
            previous.cancel()

    async def _fire(
        self, tenant: str, command_type: str, subject: dict[str, str], due: datetime
    ) -> None:
        await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()))
        stream = (
            f"conv:{subject['conversation_id']}"
            if "conversation_id" in subject
            else f"agent:{subject['agent_id']}"
        )
        command = Envelope(
            type=command_type, tenant=tenant, stream=stream, actor=SYSTEM_ACTOR, data=subject
        )
        # Sent until it is decided (or the timer is cancelled): a decision that is due must
        # be taken. Five tries (about 40 s) gave up during a longer broker outage, and the
        # offer then stood unexpired, or the disconnected agent online, for good. Resending
        # is safe: the same command id is answered once, and a timer command that finds
        # nothing due changes nothing.
        attempt = 0
        while True:
            try:
                await self._rpc.command(SERVICE, command, timeout=self._request_timeout_s)
                return
            except (RequestTimeout, ConnectionError, RuntimeError) as exc:
                log.warning(
                    "timer_command_retry",
                    command_type=command_type,
                    tenant=tenant,
                    attempt=attempt,
                    error=type(exc).__name__,
                )
                await asyncio.sleep(self._backoff(attempt))
                attempt += 1

    def after_events(self, events: Iterable[Envelope]) -> None:
        """Schedule what the just-published events call for."""
        for event in events:
            if event.type == ConversationOffered.TYPE:
                due = event.occurred_at + timedelta(seconds=event.data["expires_in_s"])
                self.schedule(
                    event.tenant,
                    ExpireOffers.TYPE,
                    {"conversation_id": event.data["conversation_id"]},
                    due,
                )
            elif event.type in SETTLED:  # no offer stands any more: nothing to expire
                self.cancel((event.tenant, ExpireOffers.TYPE, event.data["conversation_id"]))
            elif event.type == AgentConnectionLost.TYPE:
                due = event.occurred_at + timedelta(seconds=event.data["grace_s"])
                self.schedule(
                    event.tenant,
                    ExpireAgentDisconnect.TYPE,
                    {"agent_id": event.data["agent_id"]},
                    due,
                )

    def after_folded(self, events: Iterable[Envelope]) -> None:
        """Schedule what events of other deciders, read from the log, call for: a removed
        agent's chats and offers are handed back (now: the command finds what is left)."""
        for event in events:
            if event.type == AgentRemoved.TYPE:
                self._release_now(event.tenant, event.data["agent_id"])

    def _release_now(self, tenant: str, agent_id: str) -> None:
        """A removed agent's chats and offers to be handed back (the command checks)."""
        self.schedule(tenant, ReleaseRemovedAgent.TYPE, {"agent_id": agent_id}, datetime.now(UTC))

    def from_state(self, state: RoutingState) -> None:
        """After a (re)build: every standing offer and running grace period gets its timer."""
        for tenant in state.tenants.values():
            for conversation in tenant.conversations.values():
                if conversation.offered_to and conversation.offer_expires_at is not None:
                    self.schedule(
                        tenant.tenant_id,
                        ExpireOffers.TYPE,
                        {"conversation_id": conversation.conversation_id},
                        conversation.offer_expires_at,
                    )
            for agent in tenant.agents.values():
                if agent.removed and (agent.active or agent.offers):  # removed while we were down
                    self._release_now(tenant.tenant_id, agent.agent_id)
                if agent.disconnected_at is not None:
                    due = agent.disconnected_at + timedelta(seconds=agent.grace_s)
                    self.schedule(
                        tenant.tenant_id,
                        ExpireAgentDisconnect.TYPE,
                        {"agent_id": agent.agent_id},
                        due,
                    )

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
