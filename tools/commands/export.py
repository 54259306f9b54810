"""``relaydesk export`` and ``relaydesk import``: a conversation or tenant as JSON Lines.

    relaydesk export --tenant acme [--conversation c123] [--output acme.jsonl]
    relaydesk import --input acme.jsonl

Export writes a header, then every archived event with its position and hash links, in
log order, with the tenant's signed audit checkpoints (a conversation's export too), then
each attachment file with its SHA-256 (tools/replay/export_file.py): an auditor verifies it
offline (``relaydesk audit verify --file``). Import validates every line and every file's
hash first (nothing is stored or published if one is bad), stores the files, then publishes
the events in order onto the target system's log, where every consumer folds them like
live events: the read models come out the same. The source's checkpoints are not imported
(they sign the source's archive; the target signs its own), and imported webhook
subscriptions and connectors start paused until an admin resumes them.
"""

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.events.audit import AuditCheckpoint
from contracts.events.history import RetentionApplied
from contracts.events.message import AttachmentSent
from gateway.attachments import AttachmentStore, StoredAttachment
from history_service.documents import ArchivedEvent
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import ascending, bound, database, make_client, stored_rows
from tools.replay.export_file import (
    Attachment,
    ExportFile,
    read_export,
    write_attachment,
    write_event,
    write_header,
)

BATCH = 500


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaydesk export", description="export archived events as JSON Lines"
    )
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--conversation")
    parser.add_argument("--output", type=Path, help="file to write (default: stdout)")
    return parser


def _import_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relaydesk import", description="publish exported JSON Lines onto this system's log"
    )
    parser.add_argument("--input", type=Path, required=True)
    return parser


async def _export(args: argparse.Namespace, settings: Settings) -> int:
    client = make_client(settings.mongo_url or "")
    out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
    count = files = 0
    try:
        db = database(client, settings.mongo_db)
        e = await bound(db, ArchivedEvent)
        query = e.find(e.tenant == args.tenant, batch_size=1000)
        if args.conversation:
            # the conversation's chain, and what verifies it: the tenant's checkpoints and
            # retention records
            query = query.find(
                {
                    "$or": [
                        {"stream": f"conv:{args.conversation}"},
                        {"type": {"$in": [AuditCheckpoint.TYPE, RetentionApplied.TYPE]}},
                    ]
                }
            )
        write_header(out, args.tenant, args.conversation)
        attachments: list[str] = []
        async for document in stored_rows(query.sort(ascending(e.position))):
            write_event(out, document)
            count += 1
            if document["type"] == AttachmentSent.TYPE:
                attachments.append(document["data"]["attachment_id"])
        store = AttachmentStore(db)
        for attachment_id in attachments:
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
    finally:
        if args.output:
            out.close()
        await client.close()
    print(f"[export] {count:,} events, {files:,} attachment files", file=sys.stderr)
    return 0 if count else 1


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


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        export = read_export(args.input)
        _check_attachments(export)
    except (OSError, ValueError) as exc:
        print(f"relaydesk import: nothing imported: {exc}", file=sys.stderr)
        return 1
    if export.attachments and not settings.mongo_url:
        print(
            "relaydesk import: nothing imported: the file carries attachment files;"
            " set MONGO_URL to the target's MongoDB",
            file=sys.stderr,
        )
        return 2
    # the source's checkpoints sign the source's archive: the target signs its own
    envelopes = [e for e in export.envelopes if e.type != AuditCheckpoint.TYPE]
    if export.attachments:
        await _store_files(settings, export.attachments)
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
    print(
        f"\n[import] {len(envelopes):,} events published,"
        f" {len(export.attachments):,} attachment files stored",
        file=sys.stderr,
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


def main(argv: Sequence[str], settings: Settings | None = None) -> int:
    args = _export_parser().parse_args(list(argv))
    settings = settings or Settings()
    if not settings.mongo_url:
        print(
            "relaydesk export: set MONGO_URL to the archive's MongoDB (relaydesk up prints it)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_export(args, settings))


def import_main(argv: Sequence[str], settings: Settings | None = None) -> int:
    return asyncio.run(_import(_import_parser().parse_args(list(argv)), settings or Settings()))
