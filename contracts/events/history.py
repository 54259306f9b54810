"""History events: what history_service itself decides (data retention)."""

from datetime import datetime

from pydantic import Field, model_validator

from contracts.base import EventData, Id

MAX_CONVERSATIONS = 200  # per event: a purge of many conversations is several events


class RetentionApplied(EventData):
    """Message bodies of these closed conversations were removed under the tenant's retention.

    Published *before* the bodies are redacted, so the record exists for whatever is
    redacted; ``relaydesk audit verify`` accepts a redacted archive event only when such a
    record names its conversation.
    """

    TYPE = "history.retention_applied"
    retention_days: int = Field(ge=1)
    cutoff: datetime  # conversations closed before this moment
    conversation_ids: tuple[Id, ...] = Field(min_length=1, max_length=MAX_CONVERSATIONS)
    messages: int = Field(ge=0)  # message events whose content is removed


class EventsExpired(EventData):
    """Log positions ``first_position``..``last_position`` were gone from the log stream when
    history came to archive them: it was behind by more than the stream's retention (30 days
    by default). Whatever they held is in no archive; ``relaydesk audit verify`` reports the
    range as ``expired`` for every scope, since it cannot know whose events they were.
    """

    TYPE = "history.events_expired"
    first_position: int = Field(ge=0)
    last_position: int = Field(ge=0)

    @model_validator(mode="after")
    def _a_range(self) -> "EventsExpired":
        if self.last_position < self.first_position:
            raise ValueError("last_position must not be before first_position")
        return self


MODELS = (RetentionApplied, EventsExpired)
