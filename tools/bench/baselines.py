"""Baselines measured in the same run as relaydesk, at the same offered load.

- B1 ``ws_relay``: customer → bare websocket relay → receiver (relay_server.py, its own process).
- B2 ``stream_echo``: persistent, confirmed aio-pika publish → a RabbitMQ stream → consumer.
- P1 ``chat_service``: the seed peer (an-sh/chat-service on Node, memory state, not durable),
  driven by its own harness in ../shared/peers/chat-service, installed from npm on first use.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
import websockets

from relaydesk.bus.endpoint import split_urls
from tools.bench.stats import Latencies
from tools.embedded import free_port

PEER_CACHE = Path.home() / ".cache" / "relaydesk" / "peer-chat-service"


async def _open_loop(rate: float, seconds: float, send: Any) -> int:
    """Call ``send(sequence, scheduled_ns)`` on schedule; returns how many were sent."""
    total = int(rate * seconds)
    interval = int(1e9 / rate)
    start = time.perf_counter_ns() + 50_000_000
    for sequence in range(total):
        scheduled = start + sequence * interval
        delay = scheduled - time.perf_counter_ns()
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        await send(sequence, scheduled)
    return total


async def _collect(expected: int, received: Latencies, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while len(received) < expected and time.monotonic() < deadline:  # noqa: ASYNC110 - a count
        await asyncio.sleep(0.05)


async def ws_relay(rate: float, seconds: float, pairs: int) -> dict[str, Any]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.bench.relay_server", str(port), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        await asyncio.wait_for(server.stdout.readline(), 20)
        latencies = Latencies()
        receivers = [
            await websockets.connect(
                f"ws://127.0.0.1:{port}/recv/{i}", compression=None, max_queue=None
            )
            for i in range(pairs)
        ]
        senders = [
            await websockets.connect(
                f"ws://127.0.0.1:{port}/send/{i}", compression=None, max_queue=None
            )
            for i in range(pairs)
        ]

        async def read(socket: Any) -> None:
            async for frame in socket:
                latencies.record_ns(time.perf_counter_ns() - int(frame.split(" ")[2]))

        readers = [asyncio.create_task(read(r)) for r in receivers]
        await asyncio.sleep(0)

        async def send(sequence: int, scheduled: int) -> None:
            await senders[sequence % pairs].send(f"bench {sequence} {scheduled}")

        sent = await _open_loop(rate, seconds, send)
        await _collect(sent, latencies)
        for reader in readers:
            reader.cancel()
        for socket in receivers + senders:
            await socket.close()
        return {"sent": sent, "received": len(latencies), "latency": latencies.summary()}
    finally:
        server.terminate()
        await server.wait()


async def stream_echo(amqp_url: str, rate: float, seconds: float) -> dict[str, Any]:
    connection = await aio_pika.connect_robust(split_urls(amqp_url)[0])
    queue_name = f"bench.echo.{uuid.uuid4().hex[:8]}"
    try:
        publish_channel = await connection.channel(publisher_confirms=True)
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=1000)
        queue = await consume_channel.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "stream"}
        )
        latencies = Latencies()
        pending: list[Any] = []
        unacked: list[Any] = []

        async def on_message(message: Any) -> None:
            latencies.record_ns(time.perf_counter_ns() - int(message.body.split(b" ")[2]))
            unacked.append(message)
            if len(unacked) >= 100:
                await unacked[-1].ack(multiple=True)
                unacked.clear()

        tag = await queue.consume(on_message, arguments={"x-stream-offset": "next"})

        async def send(sequence: int, scheduled: int) -> None:
            body = f"bench {sequence} {scheduled}".encode()
            # Confirms are pipelined: the publish is awaited in a task, not before the next send.
            pending.append(
                asyncio.create_task(
                    publish_channel.default_exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue_name,
                    )
                )
            )

        sent = await _open_loop(rate, seconds, send)
        await asyncio.gather(*pending)
        await _collect(sent, latencies)
        await queue.cancel(tag)  # before the delete, so the broker has no consumer to cancel
        await consume_channel.queue_delete(queue_name)
        return {"sent": sent, "received": len(latencies), "latency": latencies.summary()}
    finally:
        await connection.close()


def _peer_source() -> Path | None:
    for candidate in (
        Path(os.environ.get("RELAYDESK_PEER_DIR", "")),
        Path.cwd().parent / "shared" / "peers" / "chat-service",
        Path(__file__).resolve().parents[3] / "shared" / "peers" / "chat-service",
    ):
        if candidate.name and (candidate / "server.js").exists():
            return candidate
    return None


def prepare_peer() -> Path | None:
    """Copy the peer harness to a cache directory and `npm install` it once (not committed)."""
    source = _peer_source()
    if source is None:
        # Said aloud: a report without the peer's column must not pass for one that has it.
        print(
            "[bench] chat-service peer unavailable: its harness was not found"
            " (set RELAYDESK_PEER_DIR to the directory holding server.js)",
            flush=True,
        )
        return None
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("[bench] chat-service peer unavailable: node and npm are needed", flush=True)
        return None
    PEER_CACHE.mkdir(parents=True, exist_ok=True)
    for name in ("server.js", "bench.js", "package.json"):
        shutil.copy(source / name, PEER_CACHE / name)
    if not (PEER_CACHE / "node_modules" / "chat-service").exists():
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
            check=False,
            cwd=PEER_CACHE,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            print(
                "[bench] chat-service peer unavailable: npm install failed:",
                done.stderr.strip()[-300:],
                flush=True,
            )
            return None
    return PEER_CACHE


async def chat_service(
    peer_dir: Path, rate: float, seconds: float, receivers: int = 1
) -> dict[str, Any]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        "node",
        "server.js",
        str(port),
        "memory",
        cwd=peer_dir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert server.stdout is not None
        await asyncio.wait_for(server.stdout.readline(), 30)
        messages = int(rate * seconds)
        load = await asyncio.create_subprocess_exec(
            "node",
            "bench.js",
            str(port),
            str(receivers),
            str(messages),
            str(int(rate)),
            cwd=peer_dir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        output, errors = await asyncio.wait_for(load.communicate(), seconds + 60)
        if load.returncode != 0:
            return {"error": errors.decode(errors="replace")[-300:]}
        result = json.loads(output.decode().strip().splitlines()[-1])
        return {
            "sent": result["sent"],
            "received": result["delivered"],
            "latency": {"p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"]},
        }
    finally:
        server.terminate()
        await server.wait()
