"""``relaydesk export`` and ``relaydesk import``: a conversation or tenant as JSON Lines.

    relaydesk export --tenant acme [--conversation c123] [--output acme.jsonl]
    relaydesk import --input acme.jsonl

Export writes a header, then every archived event with its position and hash links, in
log order, with the tenant's signed audit checkpoints (a conversation's export too), then
each attachment file with its SHA-256 (tools/replay/export_file.py): an auditor verifies it
offline (``relaydesk audit verify --file``). Import validates every line, every hash link
and every file's hash first (nothing is stored or published if one is bad), stores the
files, then publishes the events in order onto the target system's log, where every
consumer folds them like live events: the read models come out the same. The source's
checkpoints are not imported (they sign the source's archive; the target signs its own),
and imported webhook subscriptions and connectors start paused until an admin resumes them.
"""

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, TextIO

import click
from beanie.odm.queries.find import FindMany
from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Actor, ActorKind, Envelope
from contracts.events.admin import WebhookPaused, WebhookSubscribed
from contracts.events.audit import AuditCheckpoint
from contracts.events.connector import ConnectorConfigured, ConnectorPaused
from contracts.events.history import RetentionApplied
from contracts.events.message import AttachmentSent
from contracts.ids import derive_event_id
from history_service.documents import ArchivedEvent
from relaydesk.attachments import AttachmentStore, StoredAttachment
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import Row, ascending, bound, database, make_client, stored_rows
from tools.commands.audit import archive_settings
from tools.commands.outcomes import CommandFailed, run_async, settings_of, tool_logging
from tools.commands.tenant_option import tenant_id
from tools.progress import ProgressLine
from tools.replay.export_file import (
    Attachment,
    ExportFile,
    read_export,
    write_attachment,
    write_event,
    write_header,
)
from tools.replay.verify import first_broken_link

BATCH = 500


@click.command(short_help="archived events as JSON Lines")
@click.option(
    "--tenant", required=True, callback=tenant_id, help="the tenant whose events to export"
)
@click.option("--conversation", help="only this conversation")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="file to write (default: stdout)",
)
@click.pass_context
def export(ctx: click.Context, tenant: str, conversation: str | None, output: Path | None) -> int:
    """Export archived events, their hash links and checkpoints, and the attachment files, as
    JSON Lines in log order (exit 1: none matched)."""
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
    """Publish exported JSON Lines onto this system's log and store its files; nothing is
    stored or published if one line or file is bad."""
    try:
        export_file = read_export(source)
        _check_chains(export_file)
        _check_attachments(export_file)
    except (OSError, ValueError) as exc:
        raise CommandFailed(f"nothing imported: {exc}") from None
    settings = settings_of(ctx)
    if export_file.attachments and not settings.mongo_url:
        raise CommandFailed(
            "nothing imported: the file carries attachment files;"
            " set MONGO_URL to the target's MongoDB"
        )
    tool_logging(ctx, "import")
    return run_async(_import(settings, export_file), settings)


async def _export(
    settings: Settings, tenant: str, conversation: str | None, output: Path | None
) -> int:
    client = make_client(settings.mongo_url or "")
    try:
        # The archive first: when it cannot be reached, no empty output file is left behind.
        await client.admin.command("ping")
        db = database(client, settings.mongo_db)
        e = await bound(db, ArchivedEvent)
        if not await _any_selected(e, tenant, conversation):
            # Not even the checkpoints: on their own they looked like an export of the
            # conversation (another tenant's, or one that does not exist), and exit 0.
            what = f"conversation {conversation!r} of " if conversation else ""
            print(f"[export] no archived event of {what}tenant {tenant!r}", file=sys.stderr)
            return 1
        with output.open("w", encoding="utf-8") if output else nullcontext(sys.stdout) as out:
            count, files = await _write(out, db, e, tenant, conversation)
    finally:
        await client.close()
    print(f"[export] {count:,} events, {files:,} attachment files", file=sys.stderr)
    return 0


def _selected(e: type[ArchivedEvent], tenant: str, conversation: str | None) -> FindMany[Any]:
    """The events asked for: the tenant's, or one conversation's of that tenant."""
    query = e.find(e.tenant == tenant, batch_size=1000)
    return query.find({"stream": f"conv:{conversation}"}) if conversation else query


async def _any_selected(e: type[ArchivedEvent], tenant: str, conversation: str | None) -> bool:
    return bool([row async for row in stored_rows(_selected(e, tenant, conversation).limit(1))])


def _exported(e: type[ArchivedEvent], tenant: str, conversation: str | None) -> FindMany[Any]:
    """The events asked for and, for one conversation, what verifies its chain: the
    tenant's checkpoints and retention records."""
    if not conversation:
        return _selected(e, tenant, None)
    return e.find(e.tenant == tenant, batch_size=1000).find(
        {
            "$or": [
                {"stream": f"conv:{conversation}"},
                {"type": {"$in": [AuditCheckpoint.TYPE, RetentionApplied.TYPE]}},
            ]
        }
    )


async def _write(
    out: TextIO,
    db: AsyncDatabase[Row],
    e: type[ArchivedEvent],
    tenant: str,
    conversation: str | None,
) -> tuple[int, int]:
    """The export: its header, the events in log order, the attachment files. Returns how
    many events and files were written."""
    write_header(out, tenant, conversation)
    exported = _exported(e, tenant, conversation).sort(ascending(e.position))
    count = 0
    attachments: list[str] = []
    async for document in stored_rows(exported):
        write_event(out, document)
        count += 1
        if document["type"] == AttachmentSent.TYPE:
            attachments.append(document["data"]["attachment_id"])
    return count, await _write_files(out, AttachmentStore(db), attachments)


async def _write_files(out: TextIO, store: AttachmentStore, attachment_ids: list[str]) -> int:
    files = 0
    for attachment_id in attachment_ids:
        found = await store.find(attachment_id)
        if found is None:
            print(f"[export] attachment {attachment_id}: no file stored", file=sys.stderr)
            continue
        content = await store.read(attachment_id)
        write_attachment(
            out,
            Attachment(
                found.attachment_id,
                found.filename,
                found.content_type,
                found.conversation_id,
                found.tenant,
                content,
            ),
        )
        files += 1
    return files


def _check_chains(export: ExportFile) -> None:
    """Every hash chain of the file links: the target signs what it imports into an archive
    of its own, so an event edited in the file would come out of it as the record."""
    broken = first_broken_link(export) if export.verifiable else None
    if broken is not None:
        raise ValueError(
            f"hash chain broken at position {broken.position} (tenant {broken.tenant},"
            f" {broken.stream}, event {broken.event_id}): the file was altered;"
            " `relaydesk audit verify --file` lists every problem"
        )


def _check_attachments(export: ExportFile) -> None:
    """Each file belongs to an exported attachment event of the same size."""
    sizes = {
        e.data["attachment_id"]: e.data["size"]
        for e in export.envelopes
        if e.type == AttachmentSent.TYPE
    }
    for attachment in export.attachments:
        if sizes.get(attachment.id) != len(attachment.content):
            raise ValueError(f"attachment {attachment.id}: no exported event of its size")


# What an import creates that would act on the world: a subscription would post the new
# system's events to its URL, a connector would poll its bot and send replies.
PAUSED_ON_IMPORT = {
    WebhookSubscribed.TYPE: (WebhookPaused.TYPE, "subscription_id"),
    ConnectorConfigured.TYPE: (ConnectorPaused.TYPE, "connector_id"),
}


def paused_on_import(envelopes: list[Envelope]) -> list[Envelope]:
    """The envelopes with an ``imported`` pause just before each subscription's and
    connector's configuration, so each is paused until an admin resumes it.

    Why a pause event *before* its creation, and not one after, nor the creation rewritten:
    every consumer folds the log in order, so the admin service (webhook workers) and the
    connectors service (pollers, senders) know it paused from the creation's first fold on
    (a pause after it leaves a moment in which it would start); and the imported events
    stay byte for byte the source's, so their hash chains are the source's (the pauses go
    on a stream of their own). A resume carried over from the source names the source's
    pauses, never this one. Ids are derived from the creation's: importing a file twice
    pauses once.
    """
    out: list[Envelope] = []
    for envelope in envelopes:
        paused = PAUSED_ON_IMPORT.get(envelope.type)
        if paused is not None:
            pause_type, key = paused
            out.append(
                Envelope(
                    id=derive_event_id(envelope.tenant, "import", f"pause:{envelope.id}"),
                    type=pause_type,
                    tenant=envelope.tenant,
                    stream=f"import:{envelope.id}",
                    actor=Actor(kind=ActorKind.system, id="import"),
                    correlation_id=envelope.id,
                    data={key: envelope.data[key], "reason": "imported"},
                )
            )
        out.append(envelope)
    return out


async def _import(settings: Settings, export: ExportFile) -> int:
    # the source's checkpoints sign the source's archive: the target signs its own
    envelopes = paused_on_import([e for e in export.envelopes if e.type != AuditCheckpoint.TYPE])
    if export.attachments:
        await _store_files(settings, export.attachments)
    bus = await Bus(
        settings.amqp_url, service="import", publish_timeout_s=60, stream_url=settings.stream_url
    ).connect()
    line = ProgressLine()
    try:
        for start in range(0, len(envelopes), BATCH):
            await bus.publish_many(envelopes[start : start + BATCH])  # in order, confirmed
            line.show(f"[import] {min(start + BATCH, len(envelopes)):,}/{len(envelopes):,} events")
    finally:
        await bus.close()
    line.finish(
        f"[import] {len(envelopes):,} events published,"
        f" {len(export.attachments):,} attachment files stored"
    )
    return 0


async def _store_files(settings: Settings, attachments: list[Attachment]) -> None:
    """Before the events: an imported event never points at a missing file."""
    client = make_client(settings.mongo_url or "")
    try:
        store = AttachmentStore(database(client, settings.mongo_db))
        for a in attachments:
            await store.save(
                StoredAttachment(
                    a.id, a.tenant, a.conversation_id, a.filename, a.content_type, len(a.content)
                ),
                a.content,
            )
    finally:
        await client.close()
