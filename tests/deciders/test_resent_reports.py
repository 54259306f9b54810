"""Timed decisions and presence reports are sent until they are decided (no broker: an RPC
client that fails like one whose broker is down).

A timer command (an offer's expiry, a disconnected agent's grace) gave up after five sends,
about 40 s: after a longer broker outage the offer stood unexpired for good. The gateway
sent "the agent's connection is lost" once: sent while the broker was down, the agent
stayed online and was offered chats with no socket to see them.
"""

import asyncio
from datetime import UTC, datetime
from typing import Any

from agent_service.timers import Timers
from contracts.commands.conversation import ExpireOffers
from contracts.envelope import Envelope
from contracts.replies import CommandReply
from gateway.auth.tokens import AgentPrincipal
from gateway.directory import ConversationDirectory
from gateway.ops import Operations
from relaydesk.bus.rpc import RequestTimeout

DECIDED_WITHIN_S = 10  # a bound for a hung test, not a speed: no sleeps are waited out here


class BrokerDownFor:
    """An RPC client whose first ``failures`` commands time out, then are decided."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[Envelope] = []
        self.decided = asyncio.Event()

    async def command(self, service: str, envelope: Envelope, *, timeout: float) -> CommandReply:
        self.sent.append(envelope)
        if len(self.sent) <= self.failures:
            raise RequestTimeout("no reply: the broker is down")
        self.decided.set()
        return CommandReply(ok=True)


async def test_a_due_timer_is_sent_until_it_is_decided() -> None:
    rpc = BrokerDownFor(failures=12)  # more than the five sends it used to give up after
    timers = Timers(rpc, request_timeout_s=1, backoff=lambda attempt: 0)  # type: ignore[arg-type]
    timers.schedule("acme", ExpireOffers.TYPE, {"conversation_id": "c1"}, datetime.now(UTC))
    await asyncio.wait_for(rpc.decided.wait(), DECIDED_WITHIN_S)
    assert len(rpc.sent) == 13
    assert len({command.id for command in rpc.sent}) == 1  # one command: decided once


def operations(rpc: Any) -> Operations:
    return Operations(None, rpc, ConversationDirectory(), request_timeout_s=1)  # type: ignore[arg-type]


ANN = AgentPrincipal(tenant="acme", agent_id="ann", role="agent", permissions=frozenset())


async def test_a_lost_connection_is_reported_until_routing_hears_it() -> None:
    rpc = BrokerDownFor(failures=3)
    await asyncio.wait_for(
        operations(rpc).connection_lost(ANN, lambda: True, first_backoff_s=0),
        DECIDED_WITHIN_S,
    )
    assert rpc.decided.is_set() and len(rpc.sent) == 4
    assert {command.data["agent_id"] for command in rpc.sent} == {"ann"}
    assert len({command.id for command in rpc.sent}) == 1


async def test_an_agent_back_before_the_report_got_through_is_not_reported() -> None:
    rpc = BrokerDownFor(failures=100)
    back_after = 2  # a socket of theirs opens after two failed sends

    await asyncio.wait_for(
        operations(rpc).connection_lost(ANN, lambda: len(rpc.sent) < back_after, first_backoff_s=0),
        DECIDED_WITHIN_S,
    )
    assert len(rpc.sent) == back_after and not rpc.decided.is_set()
