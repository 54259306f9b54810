"""CPU per event of history's writes to the store, way by way, on the same server.

    python -m tools.bench.archive_writes         # embedded SecantusDB, 10k events, 3 rounds
    python -m tools.bench.archive_writes --events 20000 --rounds 5 --output report.json
    python -m tools.bench.archive_writes --steps 15,50,250 --oplog   # the store as before
    MONGO_URL=mongodb://… python -m tools.bench.archive_writes   # another server

The same events (200 conversation requests, then chat messages taking turns over them,
like the load bench's 200 conversations) go from ``LoggedEvent`` to the store, each way
into a fresh database with the production indexes:

- ``archive_raw`` / ``archive_beanie``: the archive alone (``events``: ``archive_document``
  then one unordered ``insert_many`` per batch of 1,000), plain dicts with PyMongo (shipped)
  or through beanie's ``Document.insert_many`` (validation, then beanie's encoder);
- ``read_models``: the conversations step as shipped (``ReadModels.apply``, batches of 1,000);
  ``read_models_upsert_set``: the same with every conversation written back by beanie's
  ``save()`` (an upsert of ``$set`` with every field), as history did until 2026-12-02;
- ``history_step@N``: history's whole write step for a batch (``HistoryWriter.apply``: dedupe,
  read models, archive, journaled checkpoint), in batches of N events (``--steps``): what
  the service does per batch, whose size the log's load decides (docs/history.md).

CPU is this process's user + system time (``time.process_time``), reported as seconds per
10,000 events; the server's CPU is reported beside it (psutil, when the server is the
embedded one this command started, on disk in a scratch directory with its journal like
``relaydesk up``'s; ``--oplog`` runs it as the one-member replica set with an oplog that
relaydesk used before 2026-12-02). Ways run in a shuffled order each round; the report
gives the median and the range over rounds.
"""

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
from beanie import BulkWriter
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Actor, Envelope, new_event_id
from contracts.envelope import ActorKind, LoggedEvent
from contracts.events.conversation import ConversationRequested
from contracts.events.message import MessageSent
from contracts.registry import EVENTS
from history_service.archive import archive_document
from history_service.documents import HISTORY_DOCUMENTS, ArchivedEvent
from history_service.read_models import ReadModels
from history_service.writer import HistoryWriter
from relaydesk.keys import KeyRing
from relaydesk.signing import Signer
from relaydesk.store import Checkpoint, bind_documents, bound, make_client
from tools.embedded import EmbeddedMongo

BATCH = 1000  # history_service.service.MAX_BATCH
PER = 10_000  # figures are CPU seconds per this many events
CONVERSATIONS = 200  # as the load bench's (tools/bench/chat_load.py)
STEPS = (50, 250)  # history_step batch sizes by default: a 50 ms linger at 1,000 and 5,000 msg/s

Write = Callable[[list[LoggedEvent]], Awaitable[None]]
Way = tuple[int, Callable[[AsyncDatabase], Awaitable[Write]]]  # batch size, writer factory


def chat_events(count: int, conversations: int = CONVERSATIONS) -> list[LoggedEvent]:
    """``conversations`` requests, then chat messages taking turns over them."""
    events = [
        _logged(
            position,
            ConversationRequested.TYPE,
            f"bench-{position}",
            {"visitor": {"id": f"visitor-{position}", "name": "Vic"}, "channel": "web"},
        )
        for position in range(conversations)
    ]
    for position in range(conversations, count):
        events.append(
            _logged(
                position,
                MessageSent.TYPE,
                f"bench-{position % conversations}",
                {
                    "message_id": f"m{position}",
                    "body": f"message number {position}, about as long as a chat line",
                    "author_kind": "customer",
                    "author_id": "visitor-1",
                },
            )
        )
    return events


def _logged(position: int, type_name: str, conversation: str, data: dict[str, Any]) -> LoggedEvent:
    event_id = new_event_id()
    return LoggedEvent(
        position=position,
        envelope=Envelope(
            id=event_id,
            type=type_name,
            v=EVENTS.model_for(type_name).V,
            tenant="bench",
            stream=f"conv:{conversation}",
            actor=Actor(kind=ActorKind.customer, id="visitor-1"),
            correlation_id=event_id,
            data={"conversation_id": conversation, **data},
        ),
    )


async def archive_raw(db: AsyncDatabase) -> Write:
    events = (await bound(db, ArchivedEvent)).get_pymongo_collection()

    async def write(batch: list[LoggedEvent]) -> None:
        await events.insert_many([archive_document(e) for e in batch], ordered=False)

    return write


async def archive_beanie(db: AsyncDatabase) -> Write:
    model = await bound(db, ArchivedEvent)

    async def write(batch: list[LoggedEvent]) -> None:
        documents = [model.model_validate(archive_document(e)) for e in batch]
        await model.insert_many(documents, ordered=False)

    return write


async def read_models(db: AsyncDatabase) -> Write:
    """History's conversations step as shipped (whole documents inserted or replaced)."""
    return ReadModels(db).apply


async def read_models_upsert_set(db: AsyncDatabase) -> Write:
    """The same fold, each conversation written by beanie's ``save()`` (as until 2026-12-02)."""
    models = ReadModels(db)

    async def write(batch: list[LoggedEvent]) -> None:
        folded = await models.fold(batch)
        if folded.touched:
            async with BulkWriter(ordered=False, object_class=folded.model) as writer:
                for key in folded.touched:
                    await folded.conversations[key].save(bulk_writer=writer)

    return write


async def history_step(db: AsyncDatabase) -> Write:
    """History's whole write step per batch (a writer per database: it keeps chain heads)."""
    return HistoryWriter(db, Signer(KeyRing(secrets.token_urlsafe(32)))).apply


def ways(steps: list[int]) -> dict[str, Way]:
    fixed: dict[str, Way] = {
        "archive_raw": (BATCH, archive_raw),
        "archive_beanie": (BATCH, archive_beanie),
        "read_models": (BATCH, read_models),
        "read_models_upsert_set": (BATCH, read_models_upsert_set),
    }
    return {**fixed, **{f"history_step@{size}": (size, history_step) for size in steps}}


async def measure(
    client: AsyncMongoClient, server: psutil.Process | None, way: Way, events: list[LoggedEvent]
) -> dict[str, float | None]:
    db = client[f"bench_writes_{uuid.uuid4().hex[:8]}"]
    size, make = way
    try:
        await bind_documents(db, (*HISTORY_DOCUMENTS, Checkpoint))  # the production indexes
        write = await make(db)
        server_before = _cpu(server)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for start in range(0, len(events), size):
            await write(events[start : start + size])
        cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
        server_cpu = _cpu(server) - server_before if server is not None else None
    finally:
        await client.drop_database(db.name)
    scale = PER / len(events)
    return {
        "client_cpu_s": round(cpu * scale, 3),
        "server_cpu_s": round(server_cpu * scale, 3) if server_cpu is not None else None,
        "wall_s": round(wall * scale, 3),
    }


def _cpu(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return float(times.user + times.system)


def _summary(samples: list[dict[str, float | None]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in samples[0]:
        values = [v for s in samples if (v := s[key]) is not None]
        summary[key] = (
            {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}
            if values
            else None
        )
    return summary


async def run(
    mongo_url: str, server: psutil.Process | None, events: int, rounds: int, steps: list[int]
) -> Any:
    log = chat_events(events)
    chosen = ways(steps)
    client = make_client(mongo_url)
    samples: dict[str, list[dict[str, float | None]]] = {name: [] for name in chosen}
    try:
        # warm up: connections, imports
        await measure(client, server, chosen["archive_raw"], log[:BATCH])
        for _ in range(rounds):
            for name in random.sample(list(chosen), len(chosen)):
                samples[name].append(await measure(client, server, chosen[name], log))
    finally:
        await client.close()
    results: dict[str, Any] = {name: _summary(values) for name, values in samples.items()}
    raw = results["archive_raw"]["client_cpu_s"]["median"]
    orm = results["archive_beanie"]["client_cpu_s"]["median"]
    results["archive_beanie_over_raw"] = round(orm / raw, 2) if raw else None
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.bench.archive_writes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--events", type=int, default=PER)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--steps",
        default=",".join(map(str, STEPS)),
        help="batch sizes of history's whole write step, comma-separated",
    )
    parser.add_argument(
        "--oplog",
        action="store_true",
        help="run the embedded store with an oplog (a one-member replica set), as before",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    steps = [int(size) for size in args.steps.split(",") if size]
    mongo_url = os.environ.get("MONGO_URL")
    with tempfile.TemporaryDirectory(prefix="archive-writes-") as scratch:
        embedded = None if mongo_url else EmbeddedMongo(scratch, replica_set=args.oplog).start()
        try:
            url = mongo_url or embedded.url  # type: ignore[union-attr]
            server = psutil.Process(embedded.process.pid) if embedded and embedded.process else None
            results = asyncio.run(run(url, server, args.events, args.rounds, steps))
        finally:
            if embedded is not None:
                embedded.stop()
    report = {
        "events": args.events,
        "rounds": args.rounds,
        "batch": BATCH,
        "conversations": CONVERSATIONS,
        "server": (
            "MONGO_URL"
            if mongo_url
            else f"embedded SecantusDB on disk{', with an oplog' if args.oplog else ''}"
        ),
        "cpu_s_per_10k_events": results,
    }
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
