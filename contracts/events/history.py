"""History events: what history_service itself decides (data retention)."""

from datetime import datetime

from pydantic import Field

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


MODELS = (RetentionApplied,)
