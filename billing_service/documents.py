"""Billing's MongoDB documents: the snapshot of its ledger (collection
``billing_ledger_snapshots``), as chunks of records tagged with a generation plus one
``_meta`` document naming the current generation; see relaydesk/snapshots.py and
billing_service/snapshot.py."""

from relaydesk.snapshots import snapshot_documents

SNAPSHOTS = "billing_ledger_snapshots"

LedgerSnapshotChunk, LedgerSnapshotMeta = snapshot_documents(SNAPSHOTS, "Ledger", __name__)
