"""CPU time per chat message, per process: the measure for changes that save work.

    python -m tools.bench.cpu_per_message --rate 300 --seconds 20 --rounds 3

Starts the whole system (``relaydesk up``, tools/bench/sut.py) on a RabbitMQ node of its
own (tools/cluster.py, one node: the broker's CPU is then this system's alone; ``--system-
broker`` uses the machine's broker on a scratch vhost instead, whose CPU includes whatever
else uses it), opens the bench's conversations (tools/bench/chat_load.py), and for each
round sends ``rate × seconds`` customer messages, waits until every agent got them and
history's read model holds them, and prints the user + system CPU seconds each process
spent in the round divided by the messages: microseconds per message.

CPU time, not latency: on a shared machine latency measures the neighbours, CPU seconds
measure the work. Not entirely, though: when neighbours load the machine the consumers
fall behind, their batches grow and per-batch costs spread over more messages, so each
round also prints how busy the rest of the machine was, and the store's operation
counters per message (``serverStatus`` opcounters), which no load changes. The CPU
figures include each service's idle work during the round (timers, heartbeats), which is
why a round should be long enough for messages to dominate (20 s at 300 msg/s is).
"""

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import psutil
from pymongo import AsyncMongoClient

from relaydesk.runtime import run_loop
from relaydesk.store import make_client
from tools.bench.chat_load import ChatFleet
from tools.bench.processes import ProcessMeter
from tools.bench.sut import SystemUnderTest
from tools.cluster import LocalRabbitCluster

ORDER = ("gateway", "agent", "history", "billing", "connectors", "mongodb", "rabbitmq")


def _machine_busy_s() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system + times.irq + times.softirq)


def _own_cpu_s() -> float:
    """This load generator's CPU (it runs on the machine too)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


async def _store_ops(store: AsyncMongoClient) -> dict[str, int]:
    status = await store.admin.command("serverStatus")
    counters = status.get("opcounters") or {}
    return {name: int(counters.get(name, 0)) for name in ("insert", "update", "query", "command")}


async def _history_holds(fleet: ChatFleet, count: int, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await fleet.archived_messages() >= count:
            return True
        await asyncio.sleep(0.2)  # polling history's read model until it holds them all
    return False


async def measure(
    rate: float, seconds: float, rounds: int, conversations: int, own_broker: bool
) -> dict[str, Any]:
    cluster = None
    if own_broker:
        cluster = await asyncio.to_thread(LocalRabbitCluster(1).start)
    sut = SystemUnderTest(cluster=cluster)
    try:
        running = await sut.start()
        meter = ProcessMeter(running.process.pid, cluster.pids() if cluster else ())
        fleet = ChatFleet(running.base_url, running.owner_password, conversations=conversations)
        store = make_client(running.mongo_url)
        try:
            await fleet.open()
            sequence = 0
            warm = await fleet.run(rate, 5, sequence, measure=False)
            sequence += warm["sent"]
            await _history_holds(fleet, sequence)
            results = []
            for number in range(1, rounds + 1):
                ops_before = await _store_ops(store)
                before, machine_before, own_before = meter.sample(), _machine_busy_s(), _own_cpu_s()
                wall_before = time.monotonic()
                outcome = await fleet.run(rate, seconds, sequence, measure=False)
                sequence += outcome["sent"]
                archived = await _history_holds(fleet, sequence)
                after, machine_after, own_after = meter.sample(), _machine_busy_s(), _own_cpu_s()
                cpu = meter.cpu_us_per(before, after, outcome["sent"])
                cpu["total"] = round(sum(cpu.values()), 1)
                # The load generator (this process) is not in the total: it is not the
                # system, but it shares the machine, so its cost is shown too.
                cpu["generator"] = round((own_after - own_before) * 1e6 / outcome["sent"], 1)
                ours = sum(after.cpu_s.values()) - sum(before.cpu_s.values())
                others = (machine_after - machine_before) - ours - (own_after - own_before)
                cores = psutil.cpu_count() or 1
                # What the rest of the machine used meanwhile: busy neighbours slow the
                # consumers, whose batches then grow, and per-batch costs spread thinner.
                cpu["others_busy_pct"] = round(
                    100 * others / ((time.monotonic() - wall_before) * cores), 1
                )
                ops_after = await _store_ops(store)
                results.append(
                    {
                        "round": number,
                        # The store's operation counters (serverStatus opcounters) per
                        # message: what a lever on the number of writes changes, whatever
                        # the machine's load does to the CPU figures.
                        "store_ops_per_message": {
                            name: round((ops_after[name] - ops_before[name]) / outcome["sent"], 3)
                            for name in ops_after
                        },
                        "sent": outcome["sent"],
                        "lost": outcome["lost"],
                        "history_holds_all": archived,
                        "cpu_us_per_message": cpu,
                    }
                )
                print(_row(results[-1]), flush=True)
        finally:
            await fleet.close()
            await store.close()
    finally:
        await sut.stop()
        if cluster is not None:
            await asyncio.to_thread(cluster.stop)
    return {
        "rate": rate,
        "seconds": seconds,
        "broker": "own node" if own_broker else "system broker (shared)",
        "rounds": results,
        "range": _ranges(results),
    }


def _row(result: dict[str, Any]) -> str:
    cpu = result["cpu_us_per_message"]
    cells = "  ".join(f"{name} {cpu.get(name, 0):7.1f}" for name in (*ORDER, "total", "generator"))
    ops = " ".join(f"{k} {v}" for k, v in result["store_ops_per_message"].items())
    return (
        f"round {result['round']}: {cells}  (lost {result['lost']};"
        f" rest of the machine {cpu['others_busy_pct']} % busy; store ops per message: {ops})"
    )


def _ranges(results: list[dict[str, Any]]) -> dict[str, str]:
    ranges = {}
    for name in (*ORDER, "total", "generator", "others_busy_pct"):
        values = [r["cpu_us_per_message"].get(name, 0.0) for r in results]
        ranges[name] = f"{statistics.median(values):.0f} ({min(values):.0f}–{max(values):.0f})"
    return ranges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument(
        "--system-broker", action="store_true", help="use the machine's broker (scratch vhost)"
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    report = run_loop(  # uvloop, like `relaydesk bench`: a cheaper generator
        measure(args.rate, args.seconds, args.rounds, args.conversations, not args.system_broker)
    )
    print("µs of CPU per message, median (min–max) over rounds:")
    for name, text in report["range"].items():
        print(f"  {name:<11} {text}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
