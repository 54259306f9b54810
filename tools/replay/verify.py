"""What ``relaydesk audit verify`` reads: the archive and the log, or an export file.

The checks themselves are pure (history_service/verification.py); this gathers their input.
Online, the archive is walked once in log order against the signed checkpoints (archived
and on the log), and the range of positions the stream still holds is compared event by
event with the log (read from its first retained entry up to what history has archived);
an event archived past that must be on the log at its position, and none past its head.
"""

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events.audit import AuditCheckpoint
from contracts.events.history import EventsExpired, RetentionApplied
from history_service.documents import ArchivedEvent
from history_service.verification import (
    ArchiveVerifier,
    Finding,
    Report,
    ahead_of_history,
    checkpoint_signed,
    compare_with_log,
    is_checkpoint,
    is_expired_record,
    is_retention_record,
    nothing_signed,
    past_the_log,
)
from relaydesk.bus import Bus, LogReader
from relaydesk.bus.log_head import log_head
from relaydesk.dedupe import SeenIds, first_copies
from relaydesk.settings import Settings
from relaydesk.store import (
    Checkpoints,
    ascending,
    bound,
    database,
    descending,
    make_client,
    stored_rows,
)
from tools.replay.export_file import ExportFile

HISTORY = "history"  # history_service's consumer name in the store's checkpoints
# How long a check without the log waits for history's checkpoint to pass events archived
# ahead of it: a batch being written, read models held under load (ReadModels.HOLD_S).
HISTORY_CATCH_UP_S = 5.0


class UnknownTenant(LookupError):
    """A tenant with no event in the archive, nor on the log when it is read."""


@dataclass
class Verdict:
    report: Report
    log_findings: list[Finding] = field(default_factory=list)
    log_range: tuple[int, int] | None = None  # positions compared with the log
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why

    @property
    def checked_nothing(self) -> bool:
        """No event in scope anywhere: archive, log and checkpoints had none to verify."""
        return self.report.checked == 0 and not self.findings

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
    """An export on its own: its chains against the checkpoints it carries.

    An export carries every checkpoint of its tenant: one with events and no checkpoint
    that verifies has nothing anchoring it (its checkpoint lines removed, or signed by
    another key), where one whose newest events follow its last checkpoint is only
    unsigned there yet (a note).
    """
    checkpoints = [r for r in export.records if is_checkpoint(r)]
    report = _file_report(export, checkpoints, public_keys)
    if report.checked and not any(checkpoint_signed(c, public_keys) for c in checkpoints):
        scope = scope_of(export.tenant, export.conversation)
        first = min(
            (r for r in export.records if scope(r["tenant"], r["stream"])),
            key=lambda r: r["position"],
        )
        report.findings.append(nothing_signed(first, report.checked))
        report.unanchored.clear()  # not "after its last checkpoint": there is none
    return Verdict(report)


def first_broken_link(export: ExportFile) -> Finding | None:
    """The first hash link of an export that does not hold: the links alone, which need no
    key (an edit left unhashed; a consistent rewrite needs the signer's key to be seen)."""
    return _file_report(export, [], {}).first


def _file_report(
    export: ExportFile,
    checkpoints: list[dict[str, Any]],
    public_keys: Mapping[str, Ed25519PublicKey],
) -> Report:
    verifier = ArchiveVerifier(
        checkpoints,
        public_keys,
        [r for r in export.records if is_retention_record(r)],
        scope_of(export.tenant, export.conversation),
        [r for r in export.records if is_expired_record(r)],
    )
    for record in sorted(export.records, key=lambda r: r["position"]):
        verifier.feed(record)
    return verifier.finish()


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
        # Before the log's head is asked: every event archived honestly up to here is on it.
        top = await highest_position(e, *tenant_only)
        # Without history's checkpoint (removed, or nothing archived yet) the archive's own
        # positions are compared: a forger who deletes it must not silence the log.
        settled_up_to = top if archived_up_to is None else archived_up_to
        log = LogRead()
        if with_log and settled_up_to is not None:
            log = await read_log(settings, max(settled_up_to, top or -1), tenant)
        if tenant is not None and top is None and not log.events:
            raise UnknownTenant(tenant)
        special = e.find(*tenant_only).find(
            {"type": {"$in": [AuditCheckpoint.TYPE, RetentionApplied.TYPE]}}
        )
        rows = [row async for row in stored_rows(special)] + log.checkpoints
        # Not only the tenant's: a range the log deleted unread may have held its events.
        expired = e.find(e.type == EventsExpired.TYPE)
        verifier = ArchiveVerifier(
            [r for r in rows if is_checkpoint(r)],
            public_keys,
            [r for r in rows if is_retention_record(r)],
            scope,
            [row async for row in stored_rows(expired)],
        )
        split = ArchiveSplit(settled_up_to, top, log.first)
        query = e.find(*tenant_only, batch_size=1000)
        if conversation:
            query = query.find(e.stream == f"conv:{conversation}")
        async for doc in stored_rows(query.sort(ascending(e.position))):
            verifier.feed(doc)
            split.add(doc)
            if on_progress is not None and verifier.report.checked % 1000 == 0:
                on_progress(verifier.report.checked)
        if split.ahead and archived_up_to is not None and not with_log:
            covered = await history_caught_up(db, split.ahead[-1]["position"], archived_up_to)
            return Verdict(verifier.finish(), ahead_of_history(split.ahead, covered))
    finally:
        await client.close()
    report = verifier.finish()
    notes = missing_checkpoint_notes(archived_up_to, top, with_log)
    if log.first is None or settled_up_to is None:
        return Verdict(report, notes=notes)
    in_scope = [(p, env) for p, env in log.events if scope(env["tenant"], env["stream"])]
    compared = (log.first, min(settled_up_to, log.last))
    return Verdict(report, split.compared(in_scope, log.last), compared, notes)


def missing_checkpoint_notes(
    archived_up_to: int | None, top: int | None, with_log: bool
) -> list[str]:
    """Said when history's checkpoint is missing: what the log was compared over instead."""
    if archived_up_to is not None:
        return []
    if top is None:
        instead = "the archive is empty too: nothing compared with the log"
    elif with_log:
        instead = f"compared with the log over the archive's positions, up to {top:,}"
    else:
        instead = "events archived past it cannot be told from history's (verify with the log)"
    return ["history's checkpoint is missing (nothing archived yet, or it was removed): " + instead]


@dataclass
class ArchiveSplit:
    """The archived events in scope, by how the log checks them."""

    # history's checkpoint (without one, the archive's highest position): up to it the log
    # and the archive hold the same events
    settled_up_to: int | None
    top: int | None  # the highest position archived when the check began
    log_from: int | None  # the log's first retained position
    settled: list[dict[str, Any]] = field(default_factory=list)  # in the log's range
    ahead: list[dict[str, Any]] = field(default_factory=list)  # past history's checkpoint

    def add(self, doc: dict[str, Any]) -> None:
        position = doc["position"]
        if self.settled_up_to is None or self.top is None or position > self.top:
            return  # archived after the check began: the log read may not reach it
        if position > self.settled_up_to:
            self.ahead.append(doc)
        elif self.log_from is not None and position >= self.log_from:
            self.settled.append(doc)

    def compared(self, logged: list[tuple[int, dict[str, Any]]], log_last: int) -> list[Finding]:
        """Up to history's checkpoint the log and the archive hold the same events; past it,
        each event archived must be on the log where it is, and none past what the log holds.

        The log's events past the checkpoint that are not archived yet are not missing:
        history is writing them (its inserts are unordered, and its checkpoint stays behind
        the read models it holds under load).
        """
        up_to = self.settled_up_to if self.settled_up_to is not None else -1
        found = compare_with_log([(p, env) for p, env in logged if p <= up_to], self.settled)
        positions = {doc["position"] for doc in self.ahead}
        on_the_log = [doc for doc in self.ahead if doc["position"] <= log_last]
        at_their_positions = [(p, env) for p, env in logged if p in positions]
        found += compare_with_log(at_their_positions, on_the_log)
        return found + past_the_log(self.ahead, log_last)


async def highest_position(e: type[ArchivedEvent], *conditions: Any) -> int | None:
    """The highest position the archive holds (of events meeting ``conditions``), or None."""
    newest = e.find(*conditions).sort(descending(e.position)).limit(1)
    found = [row async for row in stored_rows(newest)]
    return int(found[0]["position"]) if found else None


async def history_caught_up(db: AsyncDatabase[Any], position: int, archived_up_to: int) -> int:
    """History's checkpoint once it covers ``position``, or as it is after ``HISTORY_CATCH_UP_S``.

    Without the log, an event archived past the checkpoint can be told from a forged one only
    by history moving its checkpoint past it, which it does once the batch is written.
    """
    checkpoints = Checkpoints(db)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(HISTORY_CATCH_UP_S):
            while archived_up_to < position:
                await asyncio.sleep(0.2)  # polling history's stored position under a deadline
                archived_up_to = await checkpoints.load(HISTORY) or archived_up_to
    return archived_up_to


@dataclass
class LogRead:
    first: int | None = None  # the stream's first retained position (any tenant's event)
    last: int = -1  # the last position read: ``up_to``, or the log's head when it is lower
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # in scope
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    second_copies: list[str] = field(default_factory=list)  # ids seen again, dropped


async def read_log(settings: Settings, up_to: int, tenant: str | None) -> LogRead:
    """The log's first copies (``relaydesk.dedupe``) from its first retained entry to
    ``up_to`` or its head, whichever comes first, of one tenant or all, and its checkpoints."""
    read = LogRead()
    seen = SeenIds(limit=None)
    bus = await Bus.from_settings(settings, service="audit").connect()
    try:
        head = await log_head(bus)
        if head is None:
            return read
        up_to = read.last = min(up_to, head)
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
