"""Routing's MongoDB documents: the snapshot of its state (collection
``agent_routing_snapshots``), as chunks of records tagged with a generation plus one
``_meta`` document naming the current generation; see relaydesk/snapshots.py."""

from relaydesk.snapshots import snapshot_documents

SNAPSHOTS = "agent_routing_snapshots"

RoutingSnapshotChunk, RoutingSnapshotMeta = snapshot_documents(SNAPSHOTS, "Routing", __name__)
