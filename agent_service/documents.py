"""Routing's MongoDB documents: the snapshot of its state (collection
``agent_routing_snapshots``), as chunks of records tagged with a generation plus one
``_meta`` document naming the current generation; see relaydesk/snapshots.py."""

from beanie import Document

from relaydesk.snapshots import SnapshotChunk, SnapshotMeta

SNAPSHOTS = "agent_routing_snapshots"


class RoutingSnapshotChunk(SnapshotChunk):
    """A chunk of routing's records (relaydesk.snapshots.SnapshotChunk)."""

    class Settings:
        name = SNAPSHOTS


class RoutingSnapshotMeta(SnapshotMeta):
    """Routing's current snapshot (relaydesk.snapshots.SnapshotMeta)."""

    class Settings:
        name = SNAPSHOTS


ROUTING_DOCUMENTS: tuple[type[Document], ...] = (RoutingSnapshotChunk, RoutingSnapshotMeta)
