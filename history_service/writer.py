"""The history consumer's writes for one batch of the log: dedupe, read models, archive,
checkpoint (docs/history.md, "Processing a batch").

Kept apart from the service's loop so the bench (``python -m tools.bench.archive_writes``)
measures exactly these writes, and nothing else, against a store.
"""

from pymongo.asynchronous.database import AsyncDatabase

from contracts.envelope import LoggedEvent
from contracts.events.system import LogMarker
from history_service.anchors import Anchoring
from history_service.archive import Archive
from history_service.read_models import ReadModels
from relaydesk.signing import Signer
from relaydesk.store import Checkpoints

CONSUMER = "history"  # the checkpoint's name


class HistoryWriter:
    """Applies a batch to ``db``; every step is idempotent, so a batch may be applied again."""

    def __init__(self, db: AsyncDatabase, signer: Signer) -> None:
        self.archive = Archive(db)
        self.models = ReadModels(db)
        self.checkpoints = Checkpoints(db)
        self.anchoring = Anchoring(signer, self.archive, db)

    async def apply(self, batch: list[LoggedEvent]) -> None:
        # Read models first, archive second: after a crash between the two the events
        # are still "unseen" and are applied again, which the position guards absorb.
        # The checkpoint last, journaled: once it is in the journal, so is the batch.
        fresh = await self.archive.unseen(batch)
        await self.anchoring.seed(e.envelope.tenant for e in fresh)
        await self.models.apply([e for e in fresh if e.envelope.type != LogMarker.TYPE])
        heads = await self.archive.write(fresh)
        self.anchoring.archived(fresh, heads, batch[-1].position)
        await self.checkpoints.save(CONSUMER, batch[-1].position)
