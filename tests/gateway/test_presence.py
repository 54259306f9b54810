"""When the gateway reports an agent's connection lost (gateway/presence.py): a console reload
(the socket closed, a new one open a moment later) is not a lost connection."""

from collections.abc import Callable

from contracts.permissions import effective_permissions
from gateway.auth.tokens import AgentPrincipal
from gateway.presence import AgentPresence

WINDOW_S = 5.0


class Timer:
    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self.delay, self.callback, self.cancelled = delay, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Clockwork:
    """``loop.call_later`` whose timers fire when the test says the time has come."""

    def __init__(self) -> None:
        self.timers: list[Timer] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> Timer:
        self.timers.append(Timer(delay, callback))
        return self.timers[-1]

    def run_due(self) -> None:
        due, self.timers = self.timers, []
        for timer in due:
            if not timer.cancelled:
                timer.callback()


def _agent(agent_id: str = "ann", tenant: str = "acme") -> AgentPrincipal:
    return AgentPrincipal(tenant, agent_id, "agent", effective_permissions("agent"))


class Desk:
    """The agents' open sockets, and the losses reported, as the gateway would have them."""

    def __init__(self) -> None:
        self.sockets: dict[tuple[str, str], int] = {}
        self.reported: list[str] = []
        self.clock = Clockwork()
        self.presence = AgentPresence(
            WINDOW_S,
            self.clock,
            lambda agent: self.sockets.get((agent.tenant, agent.agent_id), 0) > 0,
            lambda agent: self.reported.append(f"{agent.tenant}/{agent.agent_id}"),
        )

    def open(self, agent: AgentPrincipal) -> None:
        key = (agent.tenant, agent.agent_id)
        self.sockets[key] = self.sockets.get(key, 0) + 1
        self.presence.socket_opened(agent)

    def close(self, agent: AgentPrincipal) -> None:
        self.sockets[(agent.tenant, agent.agent_id)] -= 1
        self.presence.socket_closed(agent)


def test_a_reload_within_the_window_reports_nothing() -> None:
    desk, ann = Desk(), _agent()
    desk.open(ann)
    desk.close(ann)  # the console reloads…
    desk.open(ann)  # …and is back before the window ends
    desk.clock.run_due()
    assert desk.reported == []


def test_no_socket_back_within_the_window_is_reported_once_after_it() -> None:
    desk, ann = Desk(), _agent()
    desk.open(ann)
    desk.close(ann)
    assert desk.reported == []  # not at once: a reload would have told every customer
    assert [timer.delay for timer in desk.clock.timers] == [WINDOW_S]
    desk.clock.run_due()
    assert desk.reported == ["acme/ann"]
    desk.clock.run_due()
    assert desk.reported == ["acme/ann"]


def test_a_closing_socket_that_was_not_the_last_starts_nothing() -> None:
    desk, ann = Desk(), _agent()
    desk.open(ann)
    desk.open(ann)  # a second tab
    desk.close(ann)
    desk.clock.run_due()
    assert desk.reported == [] and desk.clock.timers == []


def test_agents_are_told_apart_by_tenant_and_id() -> None:
    desk = Desk()
    ann, bob, other_ann = _agent("ann"), _agent("bob"), _agent("ann", tenant="globex")
    for agent in (ann, bob, other_ann):
        desk.open(agent)
        desk.close(agent)
    desk.open(ann)  # only acme's ann comes back
    desk.clock.run_due()
    assert sorted(desk.reported) == ["acme/bob", "globex/ann"]


def test_a_socket_opened_after_the_report_starts_afresh() -> None:
    desk, ann = Desk(), _agent()
    desk.open(ann)
    desk.close(ann)
    desk.clock.run_due()
    desk.open(ann)  # back after their customers were told; the agent service folds them back
    desk.close(ann)
    desk.clock.run_due()
    assert desk.reported == ["acme/ann", "acme/ann"]


def test_a_stopping_gateway_reports_nothing_more() -> None:
    """Its sockets close with 1012 and their agents reconnect elsewhere: no notice for that."""
    desk, ann, bob = Desk(), _agent("ann"), _agent("bob")
    desk.open(ann)
    desk.open(bob)
    desk.close(ann)  # pending when the gateway stops
    desk.presence.stop()
    desk.close(bob)  # closed by the stop itself
    desk.clock.run_due()
    assert desk.reported == [] and desk.clock.timers == []
