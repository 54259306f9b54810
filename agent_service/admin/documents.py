"""Administration's MongoDB documents: the snapshot of its state (collection
``admin_state_snapshots``), as chunks of records tagged with a generation plus one
``_meta`` document naming the current generation; see relaydesk/snapshots.py and
agent_service/admin/snapshot.py. The login lockout's are in ``lockout.py``."""

from relaydesk.snapshots import snapshot_documents

SNAPSHOTS = "admin_state_snapshots"

AdminSnapshotChunk, AdminSnapshotMeta = snapshot_documents(SNAPSHOTS, "Admin", __name__)
