"""How long routing's snapshot blocks its event loop: ``to_records`` of a synthetic state.

    python -m tools.bench.snapshot_records --conversations 10000 --replies 20000 [--save]

The records are built synchronously (a snapshot is exactly the log up to its position), so
their build time is how long offers, accepts and queue answers wait (docs/performance.md,
"Routing's snapshot, taken without stalling"). The second build shows a snapshot after the
first, when recent command outcomes were already made into records. ``--save`` also
writes the snapshot to an in-memory embedded store and prints the CPU routing's process
spends on it (on its loop: the encoding) and the wall time.
"""

import argparse
import asyncio
import time

from agent_service.snapshot import ReplyRecords, SnapshotStore, to_records
from agent_service.state import Conversation, RoutingState
from contracts.replies import CommandReply
from relaydesk.store import make_client
from tools.embedded import EmbeddedMongo


def synthetic_state(conversations: int, replies: int) -> RoutingState:
    state = RoutingState(position=1)
    tenant = state.tenant("bench")
    for n in range(conversations):
        conversation = Conversation(
            f"c{n:07d}", f"v{n}", "web", None, seq=n, offered_to={"a1", "a2"}
        )
        conversation.read_by["a1"] = n % 7
        tenant.conversations[conversation.conversation_id] = conversation
    for n in range(replies):
        state.replies[f"cmd-{n}"] = CommandReply(
            ok=True, event_ids=(f"e{n}",), data={"status": "engaged", "agent_id": "a1"}
        )
    return state


async def _save(url: str, state: RoutingState) -> None:
    client = make_client(url)
    try:
        store = SnapshotStore(client["snapshot_records"])
        await store.bind()
        records = to_records(state)
        cpu, wall = time.process_time(), time.perf_counter()
        await store.save(records, 1, [])
        print(
            f"save: {len(records)} records, this process's CPU"
            f" {(time.process_time() - cpu) * 1000:.0f} ms, wall"
            f" {(time.perf_counter() - wall) * 1000:.0f} ms"
        )
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--replies", type=int, default=20_000)
    parser.add_argument("--save", action="store_true", help="also time writing it to a store")
    args = parser.parse_args()
    state, replies = synthetic_state(args.conversations, args.replies), ReplyRecords()
    for label in ("first snapshot", "next snapshot"):
        started = time.perf_counter()
        records = to_records(state, replies)
        took_ms = (time.perf_counter() - started) * 1000
        print(f"{label}: {len(records)} records in {took_ms:.0f} ms")
    if args.save:
        store = EmbeddedMongo(":memory:").start()
        try:
            asyncio.run(_save(store.url, state))
        finally:
            store.stop()


if __name__ == "__main__":
    main()
