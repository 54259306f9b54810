"""Opt-in background chat load for the browser tests: ``RELAYDESK_BROWSER_LOAD=200`` runs
the benchmark's open-loop chat generator (tools/bench/chat_load.py) at 200 customer
messages per second on a tenant of its own, on the same system the browser drives, for as
long as the test runs. Bugs that only show while the read models lag behind the log (an
accepted chat opening as a dead end, history drawn out of order) show up under it.
"""

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator

from tests.browser.pages import make_tenant
from tests.system import RunningSystem
from tools.bench.chat_load import ChatFleet

ENV = "RELAYDESK_BROWSER_LOAD"
# A quarter of the per-socket frame rate (ws_rate_per_s): room for the generator's catch-up
# bursts on a starved machine (too many refusals close a socket with 4429).
PER_CONVERSATION_PER_S = 5
ROUND_S = 5.0


def requested_rate() -> float:
    """Messages per second asked for in the environment; 0: no background load."""
    raw = os.environ.get(ENV, "").strip()
    return float(raw) if raw else 0.0


@contextlib.asynccontextmanager
async def background_load(system: RunningSystem, rate: float) -> AsyncIterator[None]:
    tenant = f"load{uuid.uuid4().hex[:8]}"
    await make_tenant(system, tenant)
    conversations = max(1, -(-int(rate) // PER_CONVERSATION_PER_S))
    fleet = ChatFleet(
        system.gateway.base_url,
        "boss-secret-pw",
        conversations=conversations,
        chats_per_agent=conversations,
        tenant=tenant,
        owner_email=f"boss@{tenant}.test",
    )
    await fleet.open()
    rounds: list[dict[str, object]] = []

    async def send_forever() -> None:
        sequence = 0
        while True:
            rounds.append(await fleet.run(rate, ROUND_S, sequence, measure=False, drain_s=0.0))
            sequence += int(rate * ROUND_S)

    started = time.monotonic()
    sender = asyncio.create_task(send_forever())
    try:
        yield
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        elapsed = time.monotonic() - started
        await fleet.close()
        errors: dict[str, int] = {}
        for done in rounds:
            for code, count in done["errors"].items():  # type: ignore[attr-defined]
                errors[code] = errors.get(code, 0) + count
        delivered = len(fleet.tally.seen)  # customer messages the agents' sockets received
        # printed: pytest shows it with the test's output (-s, or on failure)
        print(
            f"background load: {rate:g} msg/s asked; agents received {delivered} messages"
            f" in {elapsed:.1f}s ({delivered / max(elapsed, 0.001):.0f} msg/s); errors {errors}"
        )
