"""History queries (contracts/queries/history.py); every one is scoped by tenant."""

from collections.abc import Awaitable, Callable
from contextlib import aclosing
from typing import Any

from beanie.operators import In
from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import Envelope, LoggedEvent
from contracts.events.admin import TenantSettingsChanged
from contracts.queries.history import (
    AdminChange,
    ArchiveEntry,
    AuditAdminEventsQuery,
    AuditVerifyQuery,
    ChainVerdict,
    ConversationAt,
    ConversationAtQuery,
    ConversationGetQuery,
    ConversationRecord,
    ConversationsListQuery,
    EventJson,
    EventsRangeQuery,
    MessageEntry,
    MessagesLastQuery,
    Report,
    ReportRow,
    ReportsSummaryQuery,
    SettingsAt,
    SettingsAtQuery,
    Transcript,
    TranscriptQuery,
)
from history_service import admin_audit, reports
from history_service.documents import ArchivedEvent, ConversationView
from history_service.hash_chain import verify_chain
from history_service.read_models import (
    MESSAGE_TYPES,
    conversation_key,
    fold_conversation,
    is_message,
    valid_data,
)
from relaydesk.archived import envelope_of
from relaydesk.bus.rpc import RemoteError
from relaydesk.queries import answers
from relaydesk.store import ascending, bound, descending, stored_rows

VIEW_STATUSES: dict[str, list[str] | None] = {
    "queued": ["queued", "offered"],
    "missed": ["missed"],
    "closed": ["closed"],
    "all": None,
}


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    """An archive entry as answered: the envelope plus its position and chain links."""
    return {
        **envelope_of(doc),
        "position": doc["position"],
        "prev_hash": doc.get("prev_hash"),
        "hash": doc.get("hash"),
    }


# How long a read waits for the read model to reach the asker's position (under the
# gateway's request timeout, 5 s by default).
UPTO_WAIT_S = 3.0
CaughtUp = Callable[[int, float], Awaitable[None]]


class HistoryQueries:
    """Answers the ``history`` queries; a method called with a plain dict validates it into
    its request model first and answers JSON (relaydesk.queries.answers)."""

    def __init__(self, db: AsyncDatabase, caught_up: CaughtUp | None = None) -> None:
        self._db = db
        self._caught_up = caught_up

    async def _reached(self, upto_position: int | None) -> None:
        """Wait (a little) until the read models hold the log up to ``upto_position``."""
        if upto_position is not None and self._caught_up is not None:
            try:
                await self._caught_up(upto_position, UPTO_WAIT_S)
            except TimeoutError:
                # An answer without events the asker knows exist would look complete.
                raise RemoteError(
                    "behind", f"history has not reached log position {upto_position} yet"
                ) from None

    @answers(MessagesLastQuery)
    async def messages_last(self, p: MessagesLastQuery) -> list[MessageEntry]:
        await self._reached(p.upto_position)
        # From the archive: every message event is there once. The filter names only the
        # fields of the (tenant, stream, position) index and the message types are picked
        # here, newest first, until the page is full: a filter on ``type`` as well is one
        # no index covers, which the embedded server answered by scanning the whole archive
        # (over a second per page at 190,000 events; docs/history.md).
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.tenant == p.tenant, e.stream == f"conv:{p.conversation_id}")
        if p.before_position is not None:
            query = query.find(e.position < p.before_position)
        page: list[MessageEntry] = []
        async with aclosing(stored_rows(query.sort(descending(e.position)))) as newest_first:
            async for d in newest_first:
                if d.get("type") in MESSAGE_TYPES and is_message(envelope := envelope_of(d)):
                    page.append(MessageEntry(position=d["position"], event=EventJson(**envelope)))
                    if len(page) == p.limit:
                        break  # aclosing: the cursor is closed now, not when collected
        return page[::-1]

    @answers(ConversationsListQuery)
    async def conversations_list(self, p: ConversationsListQuery) -> list[ConversationRecord]:
        c = await bound(self._db, ConversationView)
        query = c.find(c.tenant == p.tenant)
        if p.view == "mine":
            query = query.find(c.agent_id == str(p.agent_id), c.status == "engaged")
        elif statuses := VIEW_STATUSES[p.view]:
            query = query.find(In(c.status, statuses))
        if p.visitor_id is not None:
            query = query.find(c.visitor.id == p.visitor_id)
        return [
            ConversationRecord(**d.public())
            async for d in query.sort(descending(c.last_position)).limit(p.limit)
        ]

    @answers(ConversationGetQuery)
    async def conversation_get(self, p: ConversationGetQuery) -> ConversationRecord:
        doc = await (await bound(self._db, ConversationView)).get(f"{p.tenant}|{p.conversation_id}")
        if doc is None:
            raise RemoteError("not_found", "no such conversation")
        return ConversationRecord(**doc.public())

    @answers(TranscriptQuery)
    async def transcript(self, p: TranscriptQuery) -> Transcript:
        await self._reached(p.upto_position)
        conversation = await self.conversation_get(
            ConversationGetQuery(tenant=p.tenant, conversation_id=p.conversation_id)
        )
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.tenant == p.tenant, e.stream == f"conv:{p.conversation_id}")
        events = [
            ArchiveEntry(**_entry(d)) async for d in stored_rows(query.sort(ascending(e.position)))
        ]
        return Transcript(conversation=conversation, events=events)

    @answers(EventsRangeQuery)
    async def events_range(self, p: EventsRangeQuery) -> list[ArchiveEntry]:
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.tenant == p.tenant)
        if p.conversation_id is not None:
            query = query.find(e.stream == f"conv:{p.conversation_id}")
        if p.from_ts is not None:
            query = query.find(e.ts >= p.from_ts)
        if p.to_ts is not None:
            query = query.find(e.ts <= p.to_ts)
        return [
            ArchiveEntry(**_entry(d))
            async for d in stored_rows(query.sort(ascending(e.position)).limit(p.limit))
        ]

    @answers(ReportsSummaryQuery)
    async def reports_summary(self, p: ReportsSummaryQuery) -> Report:
        """Metrics folded from the archive now (so a changed definition applies to the past too)."""
        e = await bound(self._db, ArchivedEvent)
        query = e.find(
            e.tenant == p.tenant, In(e.type, sorted(reports.REPORT_TYPES)), batch_size=1000
        )
        cursor = stored_rows(query.sort(ascending(e.position)))
        facts = reports.fold([envelope_of(d) async for d in cursor]).values()
        chosen = [
            f
            for f in facts
            if (p.since is None or f.requested_at >= p.since)
            and (p.until is None or f.requested_at <= p.until)
        ]
        rows = reports.summarize(chosen, p.group_by)
        return Report(
            group_by=p.group_by,
            rows=[ReportRow(**row) for row in rows],
            definitions=reports.DEFINITIONS,
            csv=reports.to_csv(rows),
        )

    @answers(ConversationAtQuery)
    async def conversation_at(self, p: ConversationAtQuery) -> ConversationAt:
        """Time travel: the conversation and its messages as they were at ``at``.

        Refolded from the archive.
        """
        conversations: dict[str, ConversationView] = {}
        messages: list[MessageEntry] = []
        last_position = None
        e = await bound(self._db, ArchivedEvent)
        model = await bound(self._db, ConversationView)
        # (tenant, stream) only, the index's fields; ``ts`` is compared here (see messages_last)
        query = e.find(e.tenant == p.tenant, e.stream == f"conv:{p.conversation_id}")
        async for doc in stored_rows(query.sort(ascending(e.position))):
            if doc["ts"] > p.at:
                continue
            envelope = Envelope.model_validate(envelope_of(doc))
            data = valid_data(envelope)
            if data is None or not isinstance(data.get("conversation_id"), str):
                continue
            fold_conversation(
                LoggedEvent(position=doc["position"], envelope=envelope),
                data,
                conversations,
                model,
            )
            if envelope.type in MESSAGE_TYPES:
                event = EventJson(**envelope.model_dump(mode="json"))
                messages.append(MessageEntry(position=doc["position"], event=event))
            last_position = doc["position"]
        state = conversations.get(
            conversation_key(p.tenant, {"conversation_id": p.conversation_id})
        )
        if state is None:
            raise RemoteError("not_found", "the conversation did not exist at that moment")
        return ConversationAt(
            at=p.at.isoformat(),
            position=last_position,
            conversation=ConversationRecord(**state.public()),
            messages=messages,
        )

    @answers(SettingsAtQuery)
    async def settings_at(self, p: SettingsAtQuery) -> SettingsAt:
        """Time travel for tenant settings: every change up to ``at`` applied in log order.

        Only values that were changed appear; the caller fills in the defaults
        (contracts.settings.TenantSettings.from_saved).
        """
        folded: dict[str, Any] = {}
        changes = 0
        e = await bound(self._db, ArchivedEvent)
        query = e.find(e.tenant == p.tenant, e.type == TenantSettingsChanged.TYPE, e.ts <= p.at)
        async for doc in stored_rows(query.sort(ascending(e.position))):
            folded.update((doc.get("data") or {}).get("after") or {})
            changes += 1
        return SettingsAt(at=p.at.isoformat(), changed=folded, changes=changes)

    @answers(AuditVerifyQuery)
    async def audit_verify(self, p: AuditVerifyQuery) -> ChainVerdict:
        """Check the hash chain of a tenant (or one conversation); the first broken link if any."""
        stream = f"conv:{p.conversation_id}" if p.conversation_id is not None else None
        return ChainVerdict(**await verify_chain(self._db, p.tenant, stream))

    @answers(AuditAdminEventsQuery)
    async def audit_admin_events(self, p: AuditAdminEventsQuery) -> list[AdminChange]:
        """The tenant's administrative changes (who, what, before/after), newest first."""
        kind = p.kind or None
        if kind is not None and kind not in admin_audit.KIND_PREFIXES:
            raise RemoteError(
                "bad_request", f"kind must be one of {', '.join(admin_audit.KIND_PREFIXES)}"
            )
        found = await admin_audit.admin_events(self._db, p.tenant, kind, p.since, p.until, p.limit)
        return [AdminChange(**change) for change in found]
