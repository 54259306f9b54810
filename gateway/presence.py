"""When an agent's connection counts as lost: their last socket closed and none came back.

Reloading the console closes the agent's socket and opens a new one a second or two later.
Reported at once, that reload told every customer of the agent "Your agent lost their
connection. Please hold on." (a notice in the transcript) and left the widget's header
saying so until the next change of state, although the agent was back before anyone could
read it. So the gateway waits ``window_s`` (``RELAYDESK_AGENT_RECONNECT_WINDOW_S``) after an
agent's last socket closes and reports the loss only if no socket of theirs has opened
since; the agent service's grace period (``RELAYDESK_DISCONNECT_GRACE_S``) starts from the
report, as before.
"""

from collections.abc import Callable
from typing import Protocol

from gateway.auth.tokens import AgentPrincipal

AgentKey = tuple[str, str]  # (tenant, agent_id)


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# ``loop.call_later``'s shape: run the callback after that many seconds, cancellable.
Schedule = Callable[[float, Callable[[], None]], Cancellable]


class AgentPresence:
    def __init__(
        self,
        window_s: float,
        schedule: Schedule,
        has_sockets: Callable[[AgentPrincipal], bool],
        report_lost: Callable[[AgentPrincipal], None],
    ) -> None:
        self._window_s = window_s
        self._schedule = schedule
        self._has_sockets = has_sockets
        self._report_lost = report_lost
        self._pending: dict[AgentKey, Cancellable] = {}
        self._stopped = False

    def socket_opened(self, agent: AgentPrincipal) -> None:
        """A socket of the agent opened: a loss waiting to be reported is not one."""
        pending = self._pending.pop(_key(agent), None)
        if pending is not None:
            pending.cancel()

    def socket_closed(self, agent: AgentPrincipal) -> None:
        """A socket of the agent closed: if it was their last, report them gone after the
        window unless one opens meanwhile."""
        if self._stopped or self._has_sockets(agent) or _key(agent) in self._pending:
            return
        self._pending[_key(agent)] = self._schedule(self._window_s, lambda: self._expire(agent))

    def stop(self) -> None:
        """The gateway is stopping: its sockets are closed with 1012 and their agents
        reconnect to another gateway (or this one restarted); nothing more is reported from
        here, pending reports included (the bus they would go out on is closing)."""
        self._stopped = True
        for pending in self._pending.values():
            pending.cancel()
        self._pending.clear()

    def _expire(self, agent: AgentPrincipal) -> None:
        self._pending.pop(_key(agent), None)
        if not self._has_sockets(agent):
            self._report_lost(agent)


def _key(agent: AgentPrincipal) -> AgentKey:
    return (agent.tenant, agent.agent_id)
