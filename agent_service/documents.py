"""Routing's MongoDB documents: the snapshot of its state (collection
``agent_routing_snapshots``), as chunks of records tagged with a generation plus one
``_meta`` document naming the current generation; see agent_service/snapshot.py."""

from typing import Any

from beanie import Document
from pydantic import Field

SNAPSHOTS = "agent_routing_snapshots"
META_ID = "_meta"


class RoutingSnapshotChunk(Document):
    """Records ``n*RECORDS_PER_CHUNK…`` of one generation's state (``_id`` = ``gen:n``)."""

    id: str  # type: ignore[assignment]
    gen: str
    records: list[dict[str, Any]]

    class Settings:
        name = SNAPSHOTS


class RoutingSnapshotMeta(Document):
    """The current snapshot: its generation, the log position it stands for, how many
    chunks it has, and the command ids seen (``_id`` = :data:`META_ID`)."""

    id: str = META_ID  # type: ignore[assignment]
    gen: str
    position: int
    chunks: int
    seen: list[str] = Field(default_factory=list)

    class Settings:
        name = SNAPSHOTS


ROUTING_DOCUMENTS: tuple[type[Document], ...] = (RoutingSnapshotChunk, RoutingSnapshotMeta)
