"""Support metrics, computed by folding the archived log on every request.

Nothing is pre-aggregated, so changing a metric's definition (and its version below)
recomputes it for the whole past from the log the next time anyone asks. Each
conversation is folded into :class:`Facts`, then facts are grouped per day, agent,
group (the conversation's department) or channel.
"""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from statistics import mean
from typing import Any

from contracts.events.conversation import (
    ConversationAccepted,
    ConversationClosed,
    ConversationMissed,
    ConversationRated,
    ConversationRequested,
    ConversationTransferred,
)
from contracts.events.message import AttachmentSent, MessageSent

DEFINITIONS = {
    "conversations": (
        "v1: conversations requested (visitors turned away over a plan limit excluded)"
    ),
    "missed": "v1: conversations that were missed (no agent online, outside hours)",
    "wait_s": "v1: seconds from request to the first accept",
    "first_response_s": "v1: seconds from request to the first agent message",
    "handle_s": "v1: seconds from the first accept to close",
    "messages": "v1: customer and agent messages (system notes excluded)",
    "csat": "v1: mean rating, 1-5, of rated conversations",
}
GROUPINGS = ("day", "agent", "group", "channel")
REPORT_TYPES = frozenset(
    {
        ConversationRequested.TYPE,
        ConversationAccepted.TYPE,
        ConversationClosed.TYPE,
        ConversationMissed.TYPE,
        ConversationRated.TYPE,
        ConversationTransferred.TYPE,
        MessageSent.TYPE,
        AttachmentSent.TYPE,
    }
)


@dataclass
class Facts:
    conversation_id: str
    requested_at: datetime
    channel: str
    group: str | None
    agent_id: str | None = None
    accepted_at: datetime | None = None
    first_agent_message_at: datetime | None = None
    closed_at: datetime | None = None
    missed: bool = False
    over_limit: bool = False
    messages: int = 0
    rating: int | None = None


@dataclass
class _Row:
    conversations: int = 0
    missed: int = 0
    messages: int = 0
    waits: list[float] = field(default_factory=list)
    first_responses: list[float] = field(default_factory=list)
    handles: list[float] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)


def fold(events: Iterable[dict[str, Any]]) -> dict[str, Facts]:
    """Per-conversation facts from archived envelopes in log order (JSON form)."""
    facts: dict[str, Facts] = {}
    for event in events:
        data, kind = event["data"], event["type"]
        at = _moment(event["occurred_at"])
        conversation_id = data.get("conversation_id")
        if kind == ConversationRequested.TYPE:
            facts.setdefault(
                conversation_id,
                Facts(conversation_id, at, data.get("channel", "web"), data.get("department")),
            )
            continue
        found = facts.get(conversation_id)
        if found is None:
            continue
        if kind == ConversationAccepted.TYPE and found.accepted_at is None:
            found.accepted_at, found.agent_id = at, data.get("agent_id")
        elif kind == ConversationTransferred.TYPE:
            found.agent_id = data.get("to_agent_id")
        elif kind == ConversationMissed.TYPE:
            found.missed = True
            found.over_limit = found.over_limit or data.get("reason") == "over_limit"
        elif kind == ConversationClosed.TYPE:
            found.closed_at = at
        elif kind == ConversationRated.TYPE:
            found.rating = data.get("score")
        elif kind in (MessageSent.TYPE, AttachmentSent.TYPE):
            found.messages += 1
            if data.get("author_kind") == "agent" and found.first_agent_message_at is None:
                found.first_agent_message_at = at
    return facts


def summarize(facts: Iterable[Facts], group_by: str) -> list[dict[str, Any]]:
    if group_by not in GROUPINGS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPINGS)}")
    rows: dict[str, _Row] = {}
    for item in facts:
        if item.over_limit:
            continue
        row = rows.setdefault(_key(item, group_by), _Row())
        row.conversations += 1
        row.missed += int(item.missed and item.accepted_at is None)
        row.messages += item.messages
        if item.accepted_at:
            row.waits.append((item.accepted_at - item.requested_at).total_seconds())
        if item.first_agent_message_at:
            row.first_responses.append(
                (item.first_agent_message_at - item.requested_at).total_seconds()
            )
        if item.accepted_at and item.closed_at:
            row.handles.append((item.closed_at - item.accepted_at).total_seconds())
        if item.rating is not None:
            row.ratings.append(item.rating)
    return [
        {
            "key": key,
            "conversations": row.conversations,
            "missed": row.missed,
            "messages": row.messages,
            "wait_s": _mean(row.waits),
            "first_response_s": _mean(row.first_responses),
            "handle_s": _mean(row.handles),
            "csat": _mean(row.ratings),
        }
        for key, row in sorted(rows.items())
    ]


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = [
        "key",
        "conversations",
        "missed",
        "messages",
        "wait_s",
        "first_response_s",
        "handle_s",
        "csat",
    ]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row[c] is None else row[c]) for c in columns})
    return out.getvalue()


def _key(item: Facts, group_by: str) -> str:
    if group_by == "day":
        return item.requested_at.date().isoformat()
    if group_by == "agent":
        return item.agent_id or "(unassigned)"
    if group_by == "group":
        return item.group or "(no group)"
    return item.channel


def _mean(values: list[float] | list[int]) -> float | None:
    return round(mean(values), 2) if values else None


def _moment(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
