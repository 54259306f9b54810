"""Queries answered by history_service (service ``history``): the archive and read models.

Timestamps in answers are ISO 8601 text exactly as archived (hash chains are computed
over that text, so it is never re-rendered); timestamps in requests without a zone are UTC.
"""

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from contracts.envelope import Actor
from contracts.queries.base import Answer, TenantQuery, clamp

SERVICE = "history"
View = Literal["mine", "queued", "all", "missed", "closed"]
GroupBy = Literal["day", "agent", "group", "channel"]


def _utc(value: datetime | None) -> datetime | None:
    """In UTC (without a zone: read as UTC). A moment that is no date in UTC (year 1 at
    +14:00, year 9999 at -14:00) is refused here, not by the store's encoder later."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the moment is outside the years 1-9999 in UTC") from None


Moment = Annotated[datetime, AfterValidator(_utc)]


class EventJson(Answer):
    """An event's envelope as JSON (contracts.envelope.Envelope, ``occurred_at`` as text)."""

    id: str
    type: str
    v: int
    tenant: str
    stream: str
    actor: Actor
    occurred_at: str
    correlation_id: str | None
    causation_id: str | None
    data: dict[str, Any]


class ArchiveEntry(EventJson):
    """An archived event with its log position and hash-chain links (docs/history.md)."""

    position: int
    prev_hash: str | None
    hash: str | None


class MessageEntry(Answer):
    position: int
    event: EventJson


class Visitor(Answer):
    id: str | None = None
    name: str | None = None
    email: str | None = None
    page_url: str | None = None
    avatar_attachment_id: str | None = None  # a messaging platform's profile picture


class Rating(Answer):
    score: int | None = None
    comment: str | None = None


class ConversationRecord(Answer):
    """The ``conversations`` read model (missing fields of older documents read as empty)."""

    conversation_id: str
    tenant: str
    status: str  # queued / engaged / closed / missed (offers show as queued)
    channel: str
    visitor: Visitor
    department: str | None = None
    topic: str | None = None
    agent_id: str | None = None
    created_at: str | None = None
    accepted_at: str | None = None
    closed_at: str | None = None
    last_message_at: str | None = None
    message_count: int = 0
    rating: Rating | None = None
    last_position: int


class Transcript(Answer):
    conversation: ConversationRecord
    events: list[ArchiveEntry]


class ReportRow(Answer):
    key: str  # the day, agent, group or channel
    conversations: int
    missed: int
    messages: int
    wait_s: float | None
    first_response_s: float | None
    handle_s: float | None
    csat: float | None


class Report(Answer):
    group_by: GroupBy
    rows: list[ReportRow]
    definitions: dict[str, str]  # metric → how it is counted (versioned)
    csv: str


class ConversationAt(Answer):
    at: str
    position: int | None  # the last event at or before ``at``
    conversation: ConversationRecord
    messages: list[MessageEntry]


class SettingsAt(Answer):
    at: str
    changed: dict[str, Any]  # only what was changed; fill in contracts.settings' defaults
    changes: int


class ChainVerdict(Answer):
    """``ok`` with how many links were checked, or the first broken link."""

    ok: bool
    checked: int
    tenant: str | None = None
    stream: str | None = None
    event_id: str | None = None
    position: int | None = None
    expected_hash: str | None = None
    found_hash: str | None = None
    expected_prev_hash: str | None = None
    found_prev_hash: str | None = None


class AdminChange(Answer):
    """One administrative change: who, what, before and after (secrets hidden)."""

    position: int
    occurred_at: str
    type: str
    kind: str  # agents / groups / canned / settings / webhooks / connectors / plan
    actor: Actor | None
    subject: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class MessagesLastQuery(TenantQuery[list[MessageEntry]]):
    """The last ``limit`` messages before ``before_position`` (or the end), oldest first."""

    NAME = "messages.last"
    SERVICE = SERVICE
    conversation_id: str
    limit: Annotated[int, clamp(1, 500)] = 50
    before_position: int | None = None
    # The asker has seen the log up to here (a console opening a chat: its socket's
    # position): answer once the read model holds it, waiting a little, else error
    # ``behind`` (ask again); the read model may lag behind the log, and a message missing
    # from the answer would never be shown.
    upto_position: int | None = None


class ConversationsListQuery(TenantQuery[list[ConversationRecord]]):
    """Conversations newest first: ``mine`` (engaged to ``agent_id``), ``queued``,
    ``missed``, ``closed`` or ``all``; optionally one visitor's."""

    NAME = "conversations.list"
    SERVICE = SERVICE
    view: View = "all"
    agent_id: str | None = None
    visitor_id: str | None = None
    limit: Annotated[int, clamp(1, 500)] = 100


class ConversationGetQuery(TenantQuery[ConversationRecord]):
    NAME = "conversation.get"
    SERVICE = SERVICE
    conversation_id: str


class TranscriptQuery(TenantQuery[Transcript]):
    """The conversation and every archived event of it, in log order."""

    NAME = "transcript"
    SERVICE = SERVICE
    conversation_id: str
    # As for messages.last: answer once the archive holds the log up to here (else error
    # ``behind``), so a timeline asked for right after an accept shows that accept.
    upto_position: int | None = None


class EventsRangeQuery(TenantQuery[list[ArchiveEntry]]):
    """Archived events in log order, optionally of one conversation and a time span."""

    NAME = "events.range"
    SERVICE = SERVICE
    conversation_id: str | None = None
    from_ts: Moment | None = None
    to_ts: Moment | None = None
    limit: Annotated[int, clamp(1, 10_000)] = 1000


class ReportsSummaryQuery(TenantQuery[Report]):
    """Support metrics folded from the archive now, by ``group_by``, for conversations
    requested between ``since`` and ``until``."""

    NAME = "reports.summary"
    SERVICE = SERVICE
    group_by: GroupBy = "day"
    since: Moment | None = None
    until: Moment | None = None


class ConversationAtQuery(TenantQuery[ConversationAt]):
    """Time travel: the conversation and its messages as they were at ``at``."""

    NAME = "conversation.at"
    SERVICE = SERVICE
    conversation_id: str
    at: Moment


class SettingsAtQuery(TenantQuery[SettingsAt]):
    """Time travel: the tenant's settings changes up to ``at``, applied in log order."""

    NAME = "settings.at"
    SERVICE = SERVICE
    at: Moment


class AuditVerifyQuery(TenantQuery[ChainVerdict]):
    """Check the hash chains of the tenant, or of one conversation."""

    NAME = "audit.verify"
    SERVICE = SERVICE
    conversation_id: str | None = None


class AuditAdminEventsQuery(TenantQuery[list[AdminChange]]):
    """The tenant's administrative changes, newest first; ``kind`` narrows them (an
    unknown kind answers ``bad_request``)."""

    NAME = "audit.admin_events"
    SERVICE = SERVICE
    kind: str | None = None
    since: Moment | None = None
    until: Moment | None = None
    limit: int | None = None


QUERIES = (
    MessagesLastQuery,
    ConversationsListQuery,
    ConversationGetQuery,
    TranscriptQuery,
    EventsRangeQuery,
    ReportsSummaryQuery,
    ConversationAtQuery,
    SettingsAtQuery,
    AuditVerifyQuery,
    AuditAdminEventsQuery,
)
