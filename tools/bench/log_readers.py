"""CPU per event of reading the log, alone: the readers of one process and the broker.

    python -m tools.bench.log_readers --rate 300 --seconds 10 --rounds 3

Starts a RabbitMQ node of its own (tools/cluster.py), then per round and variant (in a
shuffled order each round) a reader process that opens two readers of the log, as the
agent process does (administration and routing), and counts what they read; this process
appends chat-sized events one at a time at ``rate`` per second (as the gateway does for
customer messages) until ``rate × seconds`` are in, and each reader has read them all.
Reported: the reader process's CPU and the broker's over that window, per event.

The variants isolate the bus's own levers, whatever else runs on the machine (both
processes see the same load, and the order changes each round):

- ``two readers, rstream codec``: two subscriptions, rstream's generic frame codec;
- ``two readers``: two subscriptions, the frames of relaydesk/bus/rstream_frames.py;
- ``shared``: one subscription shared by both readers (relaydesk/bus/shared_log.py).

What the readers' owners do with the events (folding, storing) is not here: that is
``tools.bench.cpu_per_message``, the whole system.
"""

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import time
from typing import Any

import psutil
import rstream.connection
from rstream.encoding import decode_frame, encode_frame

from contracts import Actor, Envelope
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.shared_log import SharedLog
from relaydesk.runtime import run_loop
from tools.cluster import LocalRabbitCluster

VARIANTS = ("two readers, rstream codec", "two readers", "shared")


def chat_event(n: int) -> Envelope:
    return Envelope(
        type="message.sent",
        v=2,
        tenant="bench",
        stream=f"conv:c{n % 200}",
        actor=Actor(kind="customer", id=f"v{n % 200}"),
        data={
            "conversation_id": f"c{n % 200}",
            "message_id": f"m{n}",
            "body": "Hello, I have a question about my order, it has not arrived yet.",
            "author_kind": "customer",
            "author_id": f"v{n % 200}",
        },
    )


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _child(amqp_url: str, stream_url: str, variant: str, count: int) -> None:
    """The reader process: open two readers, say "ready", read ``count`` events each."""
    if variant.endswith("rstream codec"):
        rstream.connection.decode_frame = decode_frame
        rstream.connection.encode_frame = encode_frame
        rstream.connection.CHUNK_SIZE = 256
    bus = await Bus(amqp_url, service="bench", stream_url=stream_url).connect()
    shared = SharedLog(bus.stream_endpoint, service="bench") if variant == "shared" else None
    readers = [
        await LogReader(bus, start="next", name=name, shared=shared).open()
        for name in ("admin", "routing")
    ]

    async def read(reader: LogReader) -> None:
        seen = 0
        async for batch in reader.batches():
            seen += sum(1 for event in batch if event.envelope.type == "message.sent")
            if seen >= count:
                return

    print("ready", flush=True)
    before = _cpu_s()
    await asyncio.gather(*(read(reader) for reader in readers))
    print(json.dumps({"cpu_s": _cpu_s() - before}), flush=True)
    for reader in readers:
        await reader.close()
    if shared is not None:
        await shared.close()
    await bus.close()


async def _round(
    cluster: LocalRabbitCluster, bus: Bus, variant: str, rate: float, count: int
) -> dict[str, float]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.bench.log_readers",
        "--child",
        variant,
        "--count",
        str(count),
        "--amqp-url",
        cluster.amqp_url(),
        "--stream-url",
        cluster.stream_url(),
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    stdout = child.stdout

    async def line_starting(prefix: bytes) -> bytes:
        """The child's next line that starts so (its services log to stdout too)."""
        while line := await stdout.readline():
            if line.startswith(prefix):
                return line
        raise RuntimeError(f"the reader process of {variant!r} ended early")

    await line_starting(b"ready")
    broker = psutil.Process(cluster.pids()[0])
    broker_before = sum(broker.cpu_times()[:2])
    started = time.monotonic()
    for n in range(count):  # open loop: each event at its scheduled time
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        await bus.publish(chat_event(n))
    report = json.loads(await line_starting(b"{"))
    broker_cpu = sum(broker.cpu_times()[:2]) - broker_before
    await child.wait()
    return {
        "readers_us": round(1e6 * report["cpu_s"] / count, 1),
        "broker_us": round(1e6 * broker_cpu / count, 1),
    }


async def measure(rate: float, seconds: float, rounds: int) -> dict[str, Any]:
    cluster = await asyncio.to_thread(LocalRabbitCluster(1).start)
    try:
        bus = await Bus(
            cluster.amqp_url(), service="bench", stream_url=cluster.stream_url()
        ).connect()
        results: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
        try:
            for number in range(1, rounds + 1):
                order = random.sample(VARIANTS, len(VARIANTS))
                for variant in order:
                    outcome = await _round(cluster, bus, variant, rate, int(rate * seconds))
                    results[variant].append(outcome)
                    print(f"round {number}: {variant:<28} {outcome}", flush=True)
        finally:
            await bus.close()
    finally:
        await asyncio.to_thread(cluster.stop)
    summary = {
        variant: {
            key: f"{statistics.median(r[key] for r in runs):.0f} "
            f"({min(r[key] for r in runs):.0f}–{max(r[key] for r in runs):.0f})"
            for key in ("readers_us", "broker_us")
        }
        for variant, runs in results.items()
    }
    return {"rate": rate, "seconds": seconds, "rounds": results, "median": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per variant")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--amqp-url", help=argparse.SUPPRESS)
    parser.add_argument("--stream-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        # the services' event loop (uvloop where installed)
        run_loop(_child(args.amqp_url, args.stream_url, args.child, args.count))
        return
    report = asyncio.run(measure(args.rate, args.seconds, args.rounds))
    print("µs of CPU per event, median (min–max) over rounds:")
    for variant, figures in report["median"].items():
        print(f"  {variant:<28} readers {figures['readers_us']}  broker {figures['broker_us']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
