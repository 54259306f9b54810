"""Capacity figures: idle sockets per gateway process, history archive rate, replay rates."""

import asyncio
import resource
import time
from typing import Any

import httpx
import websockets
from pymongo import AsyncMongoClient
from websockets.typing import Origin

from contracts import Actor, Envelope, new_event_id
from contracts.envelope import ActorKind
from contracts.events.message import MessageSent
from relaydesk.archived import envelope_of
from relaydesk.bus import Bus
from relaydesk.bus.log_head import log_head
from relaydesk.bus.log_reader import LogReader
from tools.bench.chat_load import TENANT, ChatFleet
from tools.bench.processes import ProcessMeter


async def idle_sockets(
    base_url: str, meter: ProcessMeter, count: int, concurrency: int = 100
) -> tuple[dict[str, Any], list[Any]]:
    """Open ``count`` authenticated customer sockets; gateway RSS per socket and connect rate.

    Returns the sockets too, so the caller can measure latency while they are held.
    """
    before = meter.sample()
    started = time.perf_counter()
    sockets, failures = await open_idle_sockets(base_url, count, concurrency)
    elapsed = time.perf_counter() - started
    after = meter.sample()
    held = len(sockets)
    grown = after.rss_bytes.get("gateway", 0) - before.rss_bytes.get("gateway", 0)
    return {
        "requested": count,
        "held": held,
        "failed": failures,
        "connects_per_s": round(held / elapsed, 1) if elapsed else None,
        "gateway_rss_mib": round(after.rss_bytes.get("gateway", 0) / 2**20, 1),
        "kib_per_socket": round(grown / 1024 / held, 2) if held else None,
    }, sockets


async def open_idle_sockets(
    base_url: str, count: int, concurrency: int = 100, compression: str | None = None
) -> tuple[list[Any], int]:
    """``count`` authenticated customer sockets that say nothing; and how many failed.

    ``compression="deflate"`` offers permessage-deflate as browsers do (the gateway
    declines it, gateway/server.py); by default the sockets offer none.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = min(count, max(0, soft - 1000))  # the generator holds one fd per socket too
    ws_url = base_url.replace("http", "ws", 1) + "/ws"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        tokens = [
            (await http.post("/api/visitor/session", json={"tenant": TENANT})).json()[
                "visitor_token"
            ]
            for _ in range(50)
        ]
    sockets: list[Any] = []
    failures = 0
    gate = asyncio.Semaphore(concurrency)

    async def connect(index: int) -> None:
        nonlocal failures
        async with gate:
            try:
                socket = await websockets.connect(
                    f"{ws_url}?token={tokens[index % len(tokens)]}",
                    origin=Origin("https://shop.example"),
                    compression=compression,
                    open_timeout=30,
                )
                await socket.recv()  # hello: authenticated and subscribed
                sockets.append(socket)
            except (OSError, websockets.WebSocketException, TimeoutError):
                failures += 1

    await asyncio.gather(*(connect(i) for i in range(count)))
    return sockets, failures


async def archive_rate(
    amqp_url: str, fleet: ChatFleet, events: int, stream_url: str | None = None
) -> dict[str, Any]:
    """Publish ``events`` messages straight onto the log; time until history has them all."""
    conversation = fleet.conversations[0].conversation_id
    baseline = await fleet.archived_messages()
    envelopes = [
        Envelope(
            id=(event_id := new_event_id()),
            type=MessageSent.TYPE,
            v=2,
            tenant=TENANT,
            stream=f"conv:{conversation}",
            actor=Actor(kind=ActorKind.customer, id="bench"),
            data={
                "conversation_id": conversation,
                "message_id": event_id,
                "body": f"archive {i}",
                "author_kind": "customer",
                "author_id": "bench",
            },
        )
        for i in range(events)
    ]
    bus = await Bus(
        amqp_url, service="bench", publish_timeout_s=60, stream_url=stream_url
    ).connect()
    try:
        started = time.perf_counter()
        for chunk in range(0, events, 500):
            await bus.publish_many(envelopes[chunk : chunk + 500])
        published = time.perf_counter() - started
        archived = baseline
        async with asyncio.timeout(max(60, events / 200)):
            while archived < baseline + events:
                await asyncio.sleep(0.1)
                archived = await fleet.archived_messages()
        elapsed = time.perf_counter() - started
    finally:
        await bus.close()
    return {
        "events": events,
        "publish_per_s": round(events / published, 1),
        "archived_per_s": round(events / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


async def replay_from_stream(amqp_url: str, stream_url: str | None = None) -> dict[str, Any]:
    """Read the whole log from the first offset, decoding and validating every envelope."""
    bus = await Bus(amqp_url, service="bench-replay", stream_url=stream_url).connect()
    count, first, last = 0, None, None
    try:
        # Up to the head as it is now: the end is known, not waited for (an idle timeout).
        head = await log_head(bus)
        async with LogReader(bus, start="first", prefetch=2000, name="bench-replay") as reader:
            async for batch in reader.batches(max_batch=1000, idle_timeout=2.0):
                now = time.perf_counter()
                first = first or now
                last = now
                count += len(batch)
                if head is None or batch[-1].position >= head:
                    break
    finally:
        await bus.close()
    seconds = (last - first) if first and last and last > first else None
    return {"events": count, "events_per_s": round(count / seconds, 1) if seconds else None}


async def replay_from_archive(mongo_url: str, database: str = "relaydesk") -> dict[str, Any]:
    """Read the MongoDB archive in log order and rebuild envelopes (validated models)."""
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    try:
        count = 0
        started = time.perf_counter()
        async for document in (
            client[database]["events"].find({}).sort("position", 1).batch_size(1000)
        ):
            Envelope.model_validate(envelope_of(document))
            count += 1
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    return {
        "events": count,
        "events_per_s": round(count / elapsed, 1) if elapsed and count else None,
    }


async def raw_insert_rates(mongo_url: str, documents: int = 5000) -> dict[str, Any]:
    """The store's own floor, same server, same run: archive-shaped documents written raw.

    History's archive rate means little on its own against an embedded, Python-written
    server; as a ratio to what raw PyMongo gets from the same server it says how much the
    archive (hash chain, read models, checkpoint: about three documents per event) costs.
    """
    client: AsyncMongoClient = AsyncMongoClient(mongo_url)
    scratch = client["bench_raw_inserts"]
    try:

        def doc(i: int) -> dict[str, Any]:
            return {
                "_id": new_event_id(),
                "position": i,
                "tenant": TENANT,
                "stream": "conv:raw",
                "type": MessageSent.TYPE,
                "data": {"body": f"raw {i}"},
            }

        started = time.perf_counter()
        for chunk in range(0, documents, 500):
            await scratch["many"].insert_many(
                [doc(i) for i in range(chunk, min(documents, chunk + 500))], ordered=False
            )
        many = documents / (time.perf_counter() - started)
        single = max(1, documents // 10)
        started = time.perf_counter()
        for i in range(single):
            await scratch["one"].insert_one(doc(i))
        one = single / (time.perf_counter() - started)
    finally:
        await client.drop_database("bench_raw_inserts")
        await client.close()
    return {
        "insert_many_docs_per_s": round(many, 1),
        "insert_one_docs_per_s": round(one, 1),
        "many_over_one": round(many / one, 2),
    }
