"""CPU per event of history's writes, raw PyMongo against beanie, on the same server.

    python -m tools.bench.archive_writes         # embedded SecantusDB, 10k events, 3 rounds
    python -m tools.bench.archive_writes --events 20000 --rounds 5 --output report.json
    MONGO_URL=mongodb://… python -m tools.bench.archive_writes   # another server

For each way the same events (100 conversation requests, then chat messages spread over
them) go from ``LoggedEvent`` to stored documents in batches of history's size (1,000):
the archive (``events``: ``archive_document`` then one unordered ``insert_many``). "raw"
inserts the plain dicts with PyMongo; "beanie" builds the documents' models and inserts
them with ``Document.insert_many`` (validation, then beanie's encoder). "read_models" is
history's whole read-model step as shipped (``ReadModels.apply``: conversations loaded,
folded and saved through beanie; messages have no read-model rows of their own since
2026-12-02, docs/performance.md). CPU is this process's user +
system time (``time.process_time``), reported as seconds per 10,000 events; the server's
CPU is reported beside it (psutil, when the server is the embedded one this command
started). Each round writes into fresh
databases, ways in a shuffled order; the report gives the median and the range over rounds.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
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
from relaydesk.store import bind_documents, bound, make_client
from tools.embedded import EmbeddedMongo

BATCH = 1000  # history_service.service.MAX_BATCH
PER = 10_000  # figures are CPU seconds per this many events

Write = Callable[[AsyncDatabase, list[LoggedEvent]], Awaitable[None]]


def chat_events(count: int, conversations: int = 100) -> list[LoggedEvent]:
    """``conversations`` requests, then chat messages spread over them, like the gateway's."""
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


async def archive_raw(db: AsyncDatabase, batch: list[LoggedEvent]) -> None:
    events = (await bound(db, ArchivedEvent)).get_pymongo_collection()
    await events.insert_many([archive_document(e) for e in batch], ordered=False)


async def archive_beanie(db: AsyncDatabase, batch: list[LoggedEvent]) -> None:
    model = await bound(db, ArchivedEvent)
    documents = [model.model_validate(archive_document(e)) for e in batch]
    await model.insert_many(documents, ordered=False)


async def read_models(db: AsyncDatabase, batch: list[LoggedEvent]) -> None:
    """History's whole read-model step as shipped (conversations through beanie)."""
    await ReadModels(db).apply(batch)


WAYS: dict[str, Write] = {
    "archive_raw": archive_raw,
    "archive_beanie": archive_beanie,
    "read_models": read_models,
}


async def measure(
    client: AsyncMongoClient, server: psutil.Process | None, way: Write, events: list[LoggedEvent]
) -> dict[str, float | None]:
    db = client[f"bench_writes_{uuid.uuid4().hex[:8]}"]
    try:
        await bind_documents(db, HISTORY_DOCUMENTS)  # the indexes as in production
        server_before = _cpu(server)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        for start in range(0, len(events), BATCH):
            await way(db, events[start : start + BATCH])
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


async def run(mongo_url: str, server: psutil.Process | None, events: int, rounds: int) -> Any:
    log = chat_events(events)
    client = make_client(mongo_url)
    samples: dict[str, list[dict[str, float | None]]] = {name: [] for name in WAYS}
    try:
        await measure(client, server, archive_raw, log[:BATCH])  # warm up: connections, imports
        for _ in range(rounds):
            for name in random.sample(list(WAYS), len(WAYS)):
                samples[name].append(await measure(client, server, WAYS[name], log))
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
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    mongo_url = os.environ.get("MONGO_URL")
    embedded = None if mongo_url else EmbeddedMongo(":memory:").start()
    try:
        url = mongo_url or embedded.url  # type: ignore[union-attr]
        server = psutil.Process(embedded.process.pid) if embedded and embedded.process else None
        results = asyncio.run(run(url, server, args.events, args.rounds))
    finally:
        if embedded is not None:
            embedded.stop()
    report = {
        "events": args.events,
        "rounds": args.rounds,
        "batch": BATCH,
        "server": "embedded SecantusDB" if embedded else "MONGO_URL",
        "cpu_s_per_10k_events": results,
    }
    text = json.dumps(report, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
