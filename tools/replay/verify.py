"""What ``relaydesk audit verify`` reads: the archive and the log, or an export file.

The checks themselves are pure (history_service/verification.py); this gathers their input.
Online, the archive is walked once in log order against the signed checkpoints (archived
and on the log), and the range of positions the stream still holds is compared event by
event with the log (read from its first retained entry up to what history has archived).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.events.audit import AuditCheckpoint
from contracts.events.history import RetentionApplied
from history_service.documents import ArchivedEvent
from history_service.verification import (
    ArchiveVerifier,
    Finding,
    Report,
    compare_with_log,
    is_checkpoint,
    is_retention_record,
)
from relaydesk.bus import Bus, LogReader
from relaydesk.dedupe import SeenIds, first_copies
from relaydesk.settings import Settings
from relaydesk.store import Checkpoints, ascending, bound, database, make_client, stored_rows
from tools.replay.export_file import ExportFile

HISTORY = "history"  # history_service's consumer name in the store's checkpoints


@dataclass
class Verdict:
    report: Report
    log_findings: list[Finding] = field(default_factory=list)
    log_range: tuple[int, int] | None = None  # positions compared with the log

    @property
    def findings(self) -> list[Finding]:
        """Every problem, first bad position first. Where the log found one in a chain, its
        exact position stands for the chain (the checkpoints only bound it from below)."""
        exact = {(f.tenant, f.stream) for f in self.log_findings}
        bounded = [f for f in self.report.findings if (f.tenant, f.stream) not in exact]
        return sorted({*bounded, *self.log_findings})


def scope_of(tenant: str | None, conversation: str | None) -> Callable[[str, str], bool]:
    stream = f"conv:{conversation}" if conversation else None
    return lambda t, s: (tenant is None or t == tenant) and (stream is None or s == stream)


def verify_file(export: ExportFile, public_keys: Mapping[str, Ed25519PublicKey]) -> Verdict:
    """An export on its own: its chains against the checkpoints it carries."""
    verifier = ArchiveVerifier(
        [r for r in export.records if is_checkpoint(r)],
        public_keys,
        [r for r in export.records if is_retention_record(r)],
        scope_of(export.tenant, export.conversation),
    )
    for record in sorted(export.records, key=lambda r: r["position"]):
        verifier.feed(record)
    return Verdict(verifier.finish())


async def verify_online(
    settings: Settings,
    tenant: str | None,
    conversation: str | None,
    public_keys: Mapping[str, Ed25519PublicKey],
    *,
    with_log: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> Verdict:
    scope = scope_of(tenant, conversation)
    client = make_client(settings.mongo_url or "")
    try:
        db = database(client, settings.mongo_db)
        archived_up_to = await Checkpoints(db).load(HISTORY)
        e = await bound(db, ArchivedEvent)
        tenant_only = (e.tenant == tenant,) if tenant else ()
        special = e.find(*tenant_only).find(
            {"type": {"$in": [AuditCheckpoint.TYPE, RetentionApplied.TYPE]}}
        )
        rows = [row async for row in stored_rows(special)]
        log = LogRead()
        if with_log and archived_up_to is not None:
            log = await read_log(settings, archived_up_to, tenant)
            rows.extend(log.checkpoints)
        verifier = ArchiveVerifier(
            [r for r in rows if is_checkpoint(r)],
            public_keys,
            [r for r in rows if is_retention_record(r)],
            scope,
        )
        first_logged = log.first
        in_log_range: list[dict[str, Any]] = []
        query = e.find(*tenant_only, batch_size=1000)
        if conversation:
            query = query.find(e.stream == f"conv:{conversation}")
        async for doc in stored_rows(query.sort(ascending(e.position))):
            verifier.feed(doc)
            if (
                first_logged is not None
                and archived_up_to is not None
                and first_logged <= doc["position"] <= archived_up_to
            ):
                in_log_range.append(doc)
            if on_progress is not None and verifier.report.checked % 1000 == 0:
                on_progress(verifier.report.checked)
    finally:
        await client.close()
    report = verifier.finish()
    if first_logged is None or archived_up_to is None:
        return Verdict(report)
    in_scope = [(p, env) for p, env in log.events if scope(env["tenant"], env["stream"])]
    return Verdict(report, compare_with_log(in_scope, in_log_range), (first_logged, archived_up_to))


@dataclass
class LogRead:
    first: int | None = None  # the stream's first retained position (any tenant's event)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # in scope
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    second_copies: list[str] = field(default_factory=list)  # ids seen again, dropped


async def read_log(settings: Settings, up_to: int, tenant: str | None) -> LogRead:
    """The log's first copies (``relaydesk.dedupe``) from its first retained entry to
    ``up_to``, of one tenant or all, and its checkpoints."""
    read = LogRead()
    seen = SeenIds(limit=None)
    bus = await Bus.from_settings(settings, service="audit").connect()
    try:
        async with LogReader(bus, start="first", prefetch=2000, name="audit") as reader:
            async for batch in reader.batches(max_batch=1000, idle_timeout=2.0):
                if read.first is None:
                    read.first = batch[0].position
                first = list(first_copies(batch, seen))
                kept = {e.position for e in first}
                read.second_copies += [e.envelope.id for e in batch if e.position not in kept]
                for event in first:
                    if event.position > up_to:
                        return read
                    envelope = event.envelope.model_dump(mode="json")
                    if tenant is not None and envelope["tenant"] != tenant:
                        continue
                    read.events.append((event.position, envelope))
                    if envelope["type"] == AuditCheckpoint.TYPE:
                        read.checkpoints.append({**envelope, "position": event.position})
                if batch[-1].position >= up_to:
                    break
    finally:
        await bus.close()
    return read
