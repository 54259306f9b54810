"""``relaydesk export`` and ``relaydesk import``: a conversation or tenant as JSON Lines.

    relaydesk export --tenant acme [--conversation c123] [--output acme.jsonl]
    relaydesk import --input acme.jsonl

Export writes one envelope per line (the contract's JSON form, ids and timestamps kept) in
log order from the MongoDB archive. Import validates every line first (nothing is published
if one is bad), then publishes them in order onto the target system's log, where every
consumer folds them like live events: the read models come out the same.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.envelope import Envelope
from contracts.errors import ContractError
from contracts.registry import EVENTS
from history_service.documents import ArchivedEvent
from history_service.hash_chain import envelope_of
from relaydesk.bus import Bus
from relaydesk.settings import Settings
from relaydesk.store import ascending, bound, database, make_client, stored_rows

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
    count = 0
    try:
        e = await bound(database(client, settings.mongo_db), ArchivedEvent)
        query = e.find(e.tenant == args.tenant, batch_size=1000)
        if args.conversation:
            query = query.find(e.stream == f"conv:{args.conversation}")
        async for document in stored_rows(query.sort(ascending(e.position))):
            envelope = Envelope.model_validate(envelope_of(document))
            out.write(json.dumps(envelope.model_dump(mode="json"), ensure_ascii=False) + "\n")
            count += 1
    finally:
        if args.output:
            out.close()
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


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    try:
        envelopes = read_envelopes(args.input)
    except (OSError, ValueError) as exc:
        print(f"relaydesk import: nothing imported: {exc}", file=sys.stderr)
        return 1
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
