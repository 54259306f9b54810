"""``relaydesk replay``: replay a conversation, a tenant or a time range from the log.

    relaydesk replay --conversation c123 --tenant acme          # print the timeline
    relaydesk replay --tenant acme --since 2026-11-01 --json    # JSON Lines of envelopes
    relaydesk replay --projection history                        # rebuild + compare with live
    relaydesk replay --projection billing --source stream

``--source archive`` (default) reads MongoDB, which holds everything ever archived;
``--source stream`` reads the RabbitMQ stream (its retention). With ``--projection`` the
events are folded into a scratch copy of that projection (history read models in a
scratch database, the routing state or the billing ledger in memory) and compared with
the live one; differences are printed and the exit code is 1 when there are any.
"""

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from contracts.envelope import LoggedEvent
from relaydesk.settings import Settings
from tools.replay import projections
from tools.replay.sources import Progress, Slice, from_archive, from_stream


def _moment(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaydesk replay", description="replay the event log; rebuild and compare projections"
    )
    parser.add_argument("--tenant")
    parser.add_argument("--conversation")
    parser.add_argument("--since", type=_moment, help="ISO 8601 start (inclusive)")
    parser.add_argument("--until", type=_moment, help="ISO 8601 end (inclusive)")
    parser.add_argument("--source", choices=["archive", "stream"], default="archive")
    parser.add_argument(
        "--projection",
        choices=["history", "agent", "billing"],
        help="rebuild this projection and compare with the live one",
    )
    parser.add_argument(
        "--scratch-db",
        help="database for the rebuilt history read models (default: <db>_replay_<time>)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--json", action="store_true", help="print envelopes as JSON Lines instead of a timeline"
    )
    return parser


def _events(
    args: argparse.Namespace, settings: Settings, progress: Progress
) -> AsyncIterator[LoggedEvent]:
    selection = Slice(args.tenant, args.conversation, args.since, args.until)
    if args.source == "stream":
        return from_stream(settings.amqp_url, selection, progress)
    if not settings.mongo_url:
        raise SystemExit(
            "relaydesk replay: --source archive needs MONGO_URL (or use --source stream)"
        )
    return from_archive(settings.mongo_url, settings.mongo_db, selection, progress)


async def _print(events: AsyncIterator[LoggedEvent], as_json: bool) -> int:
    count = 0
    async for event in events:
        count += 1
        envelope = event.envelope
        if as_json:
            print(
                json.dumps(
                    {"position": event.position, **envelope.model_dump(mode="json")},
                    ensure_ascii=False,
                )
            )
        else:
            detail = envelope.data.get("text") or (
                f"{len(str(envelope.data.get('body', '')))} chars"
                if "body" in envelope.data
                else ""
            )
            print(
                f"{event.position:>10}  {envelope.occurred_at:%Y-%m-%d %H:%M:%S}"
                f"  {envelope.type:<32} {envelope.actor.kind}:{envelope.actor.id}"
                f"  {envelope.stream}  {detail}"
            )
    return count


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    progress = Progress(args.source)
    events = _events(args, settings, progress)
    if args.projection is None:
        count = await _print(events, args.json)
        progress.done()
        return 0 if count or not (args.tenant or args.conversation) else 1
    if args.projection == "history":
        scratch = args.scratch_db or f"{settings.mongo_db}_replay_{int(time.time())}"
        differences = await projections.history(settings, events, scratch, keep=args.keep)
    elif args.projection == "agent":
        differences = await projections.routing(settings, events)
    else:
        differences = await projections.billing(settings, events)
    progress.done()
    for line in differences:
        print(f"difference: {line}")
    verdict = (
        f"{len(differences)} difference(s)" if differences else "identical to the live projection"
    )
    print(f"{args.projection}: {verdict} ({progress.matched:,} events replayed)")
    return 1 if differences else 0


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    args = _parser().parse_args(list(argv))
    try:
        return asyncio.run(_run(args, settings or Settings()))
    except (ConnectionError, OSError) as exc:
        print(f"relaydesk replay: cannot reach the servers: {exc}", file=sys.stderr)
        return 2
