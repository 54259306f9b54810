"""``relaydesk export`` and ``relaydesk import``: a conversation or tenant as JSON Lines.

    relaydesk export --tenant acme [--conversation c123] [--output acme.jsonl]
    relaydesk import --input acme.jsonl

Export writes one envelope per line (the contract's JSON form, ids and timestamps kept) in
log order from the MongoDB archive. Import validates every line first (nothing is published
if one is bad), then publishes them in order onto the target system's log, where every
consumer folds them like live events: the read models come out the same.
"""

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import click

from contracts.envelope import Envelope
from contracts.errors import ContractError
from contracts.registry import EVENTS
from history_service.documents import ArchivedEvent
from history_service.hash_chain import envelope_of
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import ascending, bound, database, make_client, stored_rows
from tools.commands.audit import archive_settings
from tools.commands.outcomes import CommandFailed, run_async, settings_of, tool_logging

BATCH = 500


@click.command(short_help="archived events as JSON Lines")
@click.option("--tenant", required=True, help="the tenant whose events to export")
@click.option("--conversation", help="only this conversation")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write (default: stdout)",
)
@click.pass_context
def export(ctx: click.Context, tenant: str, conversation: str | None, output: Path | None) -> int:
    """Export archived events as JSON Lines, in log order (exit 1: none matched)."""
    settings = archive_settings(ctx)
    tool_logging(ctx, "export")
    return run_async(_export(settings, tenant, conversation, output), settings)


@click.command("import", short_help="publish exported JSON Lines onto this log")
@click.option(
    "--input",
    "source",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a file written by relaydesk export",
)
@click.pass_context
def import_(ctx: click.Context, source: Path) -> int:
    """Publish exported JSON Lines onto this system's log; nothing is published if one line is
    bad."""
    try:
        envelopes = read_envelopes(source)
    except (OSError, ValueError) as exc:
        raise CommandFailed(f"nothing imported: {exc}") from None
    settings = settings_of(ctx)
    tool_logging(ctx, "import")
    return run_async(_import(settings, envelopes), settings)


async def _export(
    settings: Settings, tenant: str, conversation: str | None, output: Path | None
) -> int:
    client = make_client(settings.mongo_url or "")
    count = 0
    try:
        # The archive first: when it cannot be reached, no empty output file is left behind.
        await client.admin.command("ping")
        e = await bound(database(client, settings.mongo_db), ArchivedEvent)
        query = e.find(e.tenant == tenant, batch_size=1000)
        if conversation:
            query = query.find(e.stream == f"conv:{conversation}")
        with output.open("w", encoding="utf-8") if output else nullcontext(sys.stdout) as out:
            async for document in stored_rows(query.sort(ascending(e.position))):
                envelope = Envelope.model_validate(envelope_of(document))
                out.write(json.dumps(envelope.model_dump(mode="json"), ensure_ascii=False) + "\n")
                count += 1
    finally:
        await client.close()
    print(f"[export] {count:,} events", file=sys.stderr)
    return 0 if count else 1


def read_envelopes(path: Path) -> list[Envelope]:
    """Every line as a validated envelope; raises ValueError naming the first bad line."""
    envelopes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            envelope = Envelope.model_validate_json(line)
            EVENTS.parse_envelope(envelope)
        except (ValueError, ContractError) as exc:
            raise ValueError(f"line {number}: {str(exc).splitlines()[0]}") from None
        envelopes.append(envelope)
    return envelopes


async def _import(settings: Settings, envelopes: list[Envelope]) -> int:
    bus = await Bus(
        settings.amqp_url, service="import", publish_timeout_s=60, stream_url=settings.stream_url
    ).connect()
    try:
        for start in range(0, len(envelopes), BATCH):
            await bus.publish_many(envelopes[start : start + BATCH])  # in order, confirmed
            print(
                f"\r[import] {min(start + BATCH, len(envelopes)):,}/{len(envelopes):,} events",
                end="",
                file=sys.stderr,
            )
    finally:
        await bus.close()
    print(f"\n[import] {len(envelopes):,} events published", file=sys.stderr)
    return 0
