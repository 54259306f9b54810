"""``relaydesk replay``: replay a conversation, a tenant or a time range from the log.

    relaydesk replay --conversation c123 --tenant acme          # print the timeline
    relaydesk replay --tenant acme --since 2026-11-01 --json    # JSON Lines of envelopes
    relaydesk replay --projection history                        # rebuild + compare with live
    relaydesk replay --projection billing --source stream
    relaydesk replay --tenant acme --since 2026-11-02T09:00 --until 2026-11-02T17:00 \\
        --what-if max_chats_default=2 --what-if routing_mode=least_busy

``--source archive`` (default) reads MongoDB, which holds everything ever archived;
``--source stream`` reads the RabbitMQ stream (its retention). With ``--projection`` the
events are folded into a scratch copy of that projection (history read models in a
scratch database, the routing state or the billing ledger in memory) and compared with
the live one; differences are printed and the exit code is 1 when there are any. With
``--what-if`` the tenant's recorded range is decided again by the routing decider under
the changed settings and compared with what happened (tools/commands/what_if_report.py).
"""

import functools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import click

from contracts.envelope import LoggedEvent
from relaydesk.settings import Settings
from tools.commands.outcomes import CommandFailed, run_async, settings_of, tool_logging
from tools.commands.tenant_option import tenant_id
from tools.commands.what_if_report import WhatIf, run_what_if
from tools.replay import projections
from tools.replay.sources import (
    Progress,
    Slice,
    from_archive,
    from_stream,
    head_of_log,
    touched_after,
)
from tools.replay.what_if_changes import KEYS, Changes, WhatIfRefused, parse_changes


class Moment(click.ParamType):
    """An ISO 8601 date or time; UTC when it names no zone."""

    name = "ISO-8601"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 date or time", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.command(short_help="replay the log; rebuild and compare projections")
@click.option("--tenant", callback=tenant_id, help="only this tenant")
@click.option("--conversation", help="only this conversation")
@click.option("--since", type=Moment(), help="ISO 8601 start (inclusive)")
@click.option("--until", type=Moment(), help="ISO 8601 end (inclusive)")
@click.option(
    "--source",
    type=click.Choice(["archive", "stream"]),
    default="archive",
    show_default=True,
    help="archive: MongoDB, everything ever archived; stream: the RabbitMQ stream's retention",
)
@click.option(
    "--projection",
    type=click.Choice(["history", "agent", "billing"]),
    help="rebuild this projection and compare it with the live one (exit 1: they differ)",
)
@click.option(
    "--scratch-db",
    help="a new database for the rebuilt history read models, dropped afterwards unless --keep"
    " (default: <db>_replay_<time>; the live one or an existing one is refused)",
)
@click.option("--keep", is_flag=True, help="keep the scratch database")
@click.option(
    "--what-if",
    "what_if",
    multiple=True,
    metavar="KEY=VALUE",
    help="route the tenant's range again with this setting changed and compare (repeatable;"
    f" keys: {', '.join(KEYS)})",
)
@click.option(
    "--json", "as_json", is_flag=True, help="print envelopes as JSON Lines instead of a timeline"
)
@click.pass_context
def replay(
    ctx: click.Context,
    tenant: str | None,
    conversation: str | None,
    since: datetime | None,
    until: datetime | None,
    source: str,
    projection: str | None,
    scratch_db: str | None,
    keep: bool,
    what_if: tuple[str, ...],
    as_json: bool,
) -> int:
    """Replay the event log: a conversation, a tenant or a time range; rebuild and compare
    projections.

    Exit 1: a rebuilt projection differs from the live one, or a --tenant/--conversation
    selection matched no event.
    """
    _check_range(since, until)
    changes = _what_if(what_if, tenant, conversation, projection)
    settings = settings_of(ctx)
    if source == "archive" and not settings.mongo_url:
        raise CommandFailed(
            "configuration: MONGO_URL: not set; --source archive reads the MongoDB archive"
            " (or use --source stream)"
        )
    tool_logging(ctx, "replay")
    if changes is not None:
        assert tenant is not None
        asked = WhatIf(tenant, since, until, changes, as_json)
        # the log before --since too: routing's state when the range begins
        whole = Request(Slice(tenant, None, None, until), source, None, None, False, as_json)
        progress = Progress(source)
        events = _events(whole, settings, progress)
        return run_async(run_what_if(asked, settings, events, progress), settings)
    request = Request(
        Slice(tenant, conversation, since, until), source, projection, scratch_db, keep, as_json
    )
    return run_async(_run(request, settings), settings)


def _check_range(since: datetime | None, until: datetime | None) -> None:
    """A range that ends before it begins holds no event: it is a mistake in the command,
    not an empty selection (which exits 1, as grep does)."""
    if since is not None and until is not None and since > until:
        raise click.UsageError(f"--since {since.isoformat()} is after --until {until.isoformat()}")


def _what_if(
    pairs: tuple[str, ...], tenant: str | None, conversation: str | None, projection: str | None
) -> Changes | None:
    """The --what-if changes (None without any); a usage error names what is wrong."""
    if not pairs:
        return None
    if tenant is None:
        raise click.UsageError("--what-if replays one tenant: name it with --tenant")
    if conversation or projection:
        raise click.UsageError("--what-if goes without --conversation and --projection")
    try:
        return parse_changes(pairs)
    except WhatIfRefused as exc:
        raise click.UsageError(f"--what-if: {exc}") from None


@dataclass(frozen=True)
class Request:
    selection: Slice
    source: str
    projection: str | None
    scratch_db: str | None
    keep: bool
    as_json: bool


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


def _events(request: Request, settings: Settings, progress: Progress) -> AsyncIterator[LoggedEvent]:
    if request.source == "stream":
        return from_stream(settings.amqp_url, request.selection, progress, settings.stream_url)
    return from_archive(settings.mongo_url or "", settings.mongo_db, request.selection, progress)


async def _run(request: Request, settings: Settings) -> int:
    progress = Progress(request.source)
    events = _events(request, settings, progress)
    if request.projection is None:
        count = await _print(events, request.as_json)
        progress.done()
        selected = request.selection.tenant or request.selection.conversation
        return 0 if count or not selected else 1
    touched = functools.partial(touched_after, settings.amqp_url, settings.stream_url)
    comparison: projections.Comparison
    if request.projection == "history":
        comparison = await _history(request, settings, events)
    elif request.projection == "agent":
        comparison = await projections.routing(settings, events, touched_after=touched)
    else:
        comparison = await projections.billing(settings, events, touched_after=touched)
    progress.done()
    for line in comparison.differences:
        print(f"difference: {line}")
    if comparison.moved_on:
        print(
            f"note: {len(comparison.moved_on):,} {comparison.unit}(s) changed after the last"
            " replayed event (the log went on meanwhile), not compared; replay again to"
            " include them"
        )
    print(f"{request.projection}: {_verdict(comparison)} ({progress.matched:,} events replayed)")
    return 1 if comparison.differences else 0


async def _history(
    request: Request, settings: Settings, events: AsyncIterator[LoggedEvent]
) -> projections.Comparison:
    scratch = request.scratch_db or f"{settings.mongo_db}_replay_{int(time.time())}"
    try:
        return await projections.history(
            settings,
            events,
            scratch,
            keep=request.keep,
            log_head=lambda: head_of_log(settings.amqp_url, settings.stream_url),
            scope=_whole_conversations(request.selection),
        )
    except projections.ScratchDatabaseRefused as exc:
        raise CommandFailed(str(exc)) from None


def _verdict(comparison: projections.Comparison) -> str:
    if comparison.differences:
        return f"{len(comparison.differences)} difference(s)"
    if comparison.moved_on:  # "identical" would claim those too
        return (
            f"identical in the {comparison.compared:,} {comparison.unit}(s) compared,"
            f" {len(comparison.moved_on):,} moved on"
        )
    return "identical to the live projection"


def _whole_conversations(selection: Slice) -> dict[str, str] | None:
    """The live rows a replay of ``selection`` must have made, as a filter of the read
    model, when it read every event of them (no time bounds); None with a time range (it
    saw a part of each)."""
    if selection.since is not None or selection.until is not None:
        return None
    fields = {"tenant": selection.tenant, "conversation_id": selection.conversation}
    return {name: value for name, value in fields.items() if value is not None}
