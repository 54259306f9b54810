"""``relaydesk bench``: the benchmark, with a JSON report and a readable table.

relaydesk bench                 # the full protocol (about 15 minutes on 2 cores)
relaydesk bench --quick         # a short smoke run (about a minute): same steps, small numbers
"""

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from relaydesk.runtime import run_loop
from tools.bench.runner import Options, run, table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaydesk bench",
        description="benchmark the whole system against baselines run in the same session",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 round at 200 msg/s, 20 conversations, 500 idle sockets",
    )
    parser.add_argument(
        "--rates", default=None, help="comma-separated offered rates in msg/s (default 200,1000)"
    )
    parser.add_argument(
        "--seconds", type=float, default=None, help="measured seconds per step (default 20)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--conversations", type=int, default=None, help="concurrent conversations (default 200)"
    )
    parser.add_argument(
        "--idle-sockets",
        type=int,
        default=None,
        help="idle sockets to hold on one gateway (default 10000)",
    )
    parser.add_argument(
        "--archive-events",
        type=int,
        default=None,
        help="events for the archive-rate step (default 20000)",
    )
    parser.add_argument(
        "--no-sustained", action="store_true", help="skip the maximum sustained rate search"
    )
    parser.add_argument(
        "--no-peer", action="store_true", help="skip the chat-service peer (needs node and npm)"
    )
    parser.add_argument(
        "--cluster",
        type=int,
        default=None,
        help="run on a local RabbitMQ cluster of N nodes (tools/cluster.py) and report the"
        " throughput ratio to one node and one gateway",
    )
    parser.add_argument(
        "--gateways", type=int, default=None, help="gateway processes sharing the load (default 1)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON report path (default benchmarks/results/bench-<time>.json)",
    )
    return parser


def options_from(args: argparse.Namespace) -> Options:
    base = (
        Options(
            rates=(200.0,),
            seconds=5,
            warmup_s=2,
            rounds=1,
            conversations=20,
            idle_sockets=500,
            archive_events=2000,
            sustained=False,
        )
        if args.quick
        else Options()
    )
    changes: dict[str, object] = {}
    if args.rates:
        changes["rates"] = tuple(float(r) for r in args.rates.split(","))
    for name in (
        "seconds",
        "rounds",
        "conversations",
        "idle_sockets",
        "archive_events",
        "cluster",
        "gateways",
    ):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.no_sustained:
        changes["sustained"] = False
    if args.no_peer:
        changes["peer"] = False
    return Options(**{**base.__dict__, **changes})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = options_from(args)
    report = run_loop(run(options))
    output = (
        args.output
        or Path("benchmarks/results")
        / f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}{'-quick' if args.quick else ''}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    print(f"\nreport written to {output}")
    failed = report.get("verdict", {}).get("nothing_lost_or_duplicated", {}).get("met") is False
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
