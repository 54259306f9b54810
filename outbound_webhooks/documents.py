"""The outbound webhook workers' MongoDB documents: their log positions and delivery log."""

from datetime import datetime
from typing import ClassVar

from beanie import Document
from pymongo import ASCENDING, DESCENDING, IndexModel

from relaydesk.store import Checkpoint


class WebhookPosition(Checkpoint):
    """A subscription's worker's last delivered log position (``_id`` = its consumer name)."""

    class Settings:
        name = "webhook_positions"


class WebhookDelivery(Document):
    """One delivery attempt of one event to one subscription, as the admin page lists it."""

    tenant: str
    subscription_id: str
    event_id: str
    event_type: str
    position: int
    attempt: int
    ok: bool
    status: int | None = None
    error: str | None = None
    at: datetime

    class Settings:
        name = "webhook_deliveries"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel(
                [
                    ("tenant", ASCENDING),
                    ("subscription_id", ASCENDING),
                    ("position", DESCENDING),
                    ("attempt", DESCENDING),
                ]
            )
        ]

    def public(self) -> dict[str, object]:
        """The delivery as the admin API answers it (no id, ``at`` in ISO 8601)."""
        fields = self.model_dump(exclude={"id", "revision_id"})
        return {**fields, "at": self.at.isoformat()}


WEBHOOK_DOCUMENTS: tuple[type[Document], ...] = (WebhookPosition, WebhookDelivery)
