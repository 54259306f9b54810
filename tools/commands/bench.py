"""``relaydesk bench``: the benchmark, with a JSON report and a readable table.

relaydesk bench                 # the full protocol (about 15 minutes on 2 cores)
relaydesk bench --quick         # a short smoke run (about a minute): same steps, small numbers
"""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import click


def _rates(
    ctx: click.Context, param: click.Parameter, text: str | None
) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(rate) for rate in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r}: comma-separated numbers, e.g. 200,1000") from None


@click.command(short_help="benchmark the whole system (extra: bench)")
@click.option(
    "--quick",
    is_flag=True,
    help="smoke run: 1 round at 200 msg/s, 20 conversations, 500 idle sockets",
)
@click.option(
    "--rates", callback=_rates, help="comma-separated offered rates in msg/s (default 200,1000)"
)
@click.option("--seconds", type=float, help="measured seconds per step (default 20)")
@click.option("--rounds", type=int, help="interleaved rounds (default 3)")
@click.option("--conversations", type=int, help="concurrent conversations (default 200)")
@click.option(
    "--idle-sockets", type=int, help="idle sockets to hold on one gateway (default 10000)"
)
@click.option("--archive-events", type=int, help="events for the archive-rate step (default 20000)")
@click.option(
    "--sustained-seconds",
    type=float,
    help="seconds each step of the sustained search is held (default 60)",
)
@click.option(
    "--sustained-start",
    type=click.FloatRange(min=50, min_open=False),
    help="the sustained search's first step in msg/s (default 500)",
)
@click.option(
    "--sustained-max",
    type=click.FloatRange(min=50, min_open=False),
    help="the sustained search's last step in msg/s (default 3000): with --sustained-start,"
    " one rate held alone (e.g. 1500 and 1500)",
)
@click.option("--no-sustained", is_flag=True, help="skip the maximum sustained rate search")
@click.option("--no-peer", is_flag=True, help="skip the chat-service peer (needs node and npm)")
@click.option(
    "--cluster",
    type=click.IntRange(min=1),
    help="run on a local RabbitMQ cluster of N nodes (tools/cluster.py) and report the"
    " throughput ratio to one node and one gateway",
)
@click.option(
    "--gateways", type=click.IntRange(min=1), help="gateway processes sharing the load (default 1)"
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON report path (default benchmarks/results/bench-<time>.json)",
)
def bench(
    quick: bool,
    rates: tuple[float, ...] | None,
    output: Path | None,
    no_sustained: bool,
    no_peer: bool,
    **counts: float | None,
) -> int:
    """Benchmark the whole system against baselines run in the same session (extra: bench).

    Exit 1: a message was lost or duplicated.
    """
    # Imported here: the bench extra (hdrhistogram, psutil) is only needed to run it, not to
    # list or describe the commands.
    from relaydesk.runtime import run_loop
    from tools.bench.runner import Options, run, table

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
        if quick
        else Options()
    )
    changes: dict[str, object] = {
        name: value for name, value in counts.items() if value is not None
    }
    if rates is not None:
        changes["rates"] = rates
    if no_sustained:
        changes["sustained"] = False
    if no_peer:
        changes["peer"] = False
    try:
        report = run_loop(run(Options(**{**base.__dict__, **changes})))
    except asyncio.CancelledError:  # SIGTERM or SIGHUP, as Ctrl-C: what it started is stopped
        click.echo("relaydesk bench: stopped by a signal; what it started was stopped", err=True)
        raise click.Abort() from None
    output = output or Path("benchmarks/results") / (
        f"bench-{datetime.now(UTC):%Y%m%d-%H%M%S}{'-quick' if quick else ''}.json"
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str))
    print(table(report))
    print(f"\nreport written to {output}")
    failed = report.get("verdict", {}).get("nothing_lost_or_duplicated", {}).get("met") is False
    return 1 if failed else 0
