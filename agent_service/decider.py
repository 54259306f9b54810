"""Routing's decider: its handler table and its own steps around the decider runtime.

Before a command is answered the state is brought up to the log (rebuilt when it may
differ from it, synced after a quiet spell); each emitted event is folded at once and
marked as ours for the log follower; after publishing, timers are set for the offers and
grace periods the events started. The reply carries the conversation's routing state.
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime

from agent_service import agent_commands, conversation_commands
from agent_service.decision import Decision
from agent_service.fold import SERVICE, apply
from agent_service.projection import Projection
from agent_service.state import RoutingState
from agent_service.timers import Timers
from contracts.envelope import Envelope
from contracts.plans import PlanCatalogue
from contracts.replies import CommandReply
from relaydesk.decider import Decider, Handler, utc_now

HANDLERS: dict[str, Handler[Decision]] = {
    **conversation_commands.HANDLERS,
    **agent_commands.HANDLERS,
}
# After this long without deciding anything, fold up to "now" before the next decision: a
# standby instance that just became the single active consumer must first see every
# event its predecessor published.
SYNC_AFTER_IDLE_S = 1.0


class RoutingDecider(Decider[Decision]):
    """Decides the ``agent`` commands over the routing state.

    Args:
        state: a getter for the routing state (a rebuild replaces the object).
        offer_timeout_s: the offer timeout when the tenant sets none.
        grace_s: the agent disconnect grace period.
        plans: the plan catalogue (SaaS conversation limits).
        clock: the decision time.
        projection: the state's projection of the log; without one (pure tests) the state
            is taken as it is.
        timers: schedules the timer commands that published events call for.
    """

    service = SERVICE
    handlers = HANDLERS

    def __init__(
        self,
        state: Callable[[], RoutingState],
        *,
        offer_timeout_s: int,
        grace_s: int,
        plans: PlanCatalogue,
        clock: Callable[[], datetime] = utc_now,
        projection: Projection | None = None,
        timers: Timers | None = None,
    ) -> None:
        self._state = state
        self._offer_timeout_s = offer_timeout_s
        self._grace_s = grace_s
        self._plans = plans
        self._clock = clock
        self._projection = projection
        self._timers = timers
        self._last_decided = 0.0  # loop time of the last decision

    @property
    def replies(self) -> dict[str, CommandReply]:
        return self._state().replies

    def decision(self, command: Envelope, context: object) -> Decision:
        return Decision(
            self._state(),
            command,
            now=self._clock(),
            offer_timeout_s=self._offer_timeout_s,
            grace_s=self._grace_s,
            plans=self._plans,
            fold=self.fold,
        )

    def fold(self, event: Envelope) -> None:
        if self._projection is not None:
            self._projection.expect([event.id])  # skipped when the log hands it back
        apply(self._state(), event)

    async def rebuild(self) -> None:
        """Fold the log (from the snapshot) again; standing offers and grace periods get timers."""
        assert self._projection is not None
        if self._timers is not None:
            await self._timers.cancel_all()
        await self._projection.rebuild()
        if self._timers is not None:
            self._timers.from_state(self._state())

    async def refresh(self) -> None:
        if self._projection is None:
            return
        if self._projection.stale:
            await self.rebuild()
        elif asyncio.get_running_loop().time() - self._last_decided > SYNC_AFTER_IDLE_S:
            await self._projection.sync()

    def discard(self) -> None:
        if self._projection is not None:
            self._projection.stale = True

    async def after(self, events: Sequence[Envelope]) -> None:
        self._last_decided = asyncio.get_running_loop().time()
        if self._timers is not None:
            self._timers.after_events(events)

    def reply(
        self, command: Envelope, reply: CommandReply, decision: Decision | None
    ) -> CommandReply:
        """Attach the conversation's current routing state, handy for the caller."""
        conversation_id = command.data.get("conversation_id")
        tenant = self._state().tenants.get(command.tenant)
        conversation = (
            tenant.conversations.get(conversation_id)
            if tenant and isinstance(conversation_id, str)
            else None
        )
        if conversation is None:
            return reply
        return reply.model_copy(
            update={
                "data": {
                    "status": conversation.status,
                    "agent_id": conversation.agent_id,
                    "queue_position": conversation.position,
                }
            }
        )
