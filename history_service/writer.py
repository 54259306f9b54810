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
        self.saved: int | None = None  # the checkpoint as last saved
        self.archived: int | None = None  # the last position archived (batches go in whole)

    async def apply(self, batch: list[LoggedEvent], *, hold: bool = False) -> None:
        """``hold``: the log is busy, conversations that only took messages may be written
        later (``ReadModels``); the checkpoint then stays below what is only in memory."""
        # Read models first, archive second: after a crash between the two the events
        # are archived or not, but still their ids' first copies, and are folded again,
        # which the position guards absorb. The checkpoint last, journaled: once it is in
        # the journal, so is everything up to it.
        unseen, first = await self.archive.first_copies(batch)
        await self.anchoring.seed(e.envelope.tenant for e in unseen)
        await self.models.apply([e for e in first if e.envelope.type != LogMarker.TYPE], hold=hold)
        heads = await self.archive.write(unseen)
        self.anchoring.archived(unseen, heads, batch[-1].position)
        await self._checkpoint(batch[-1].position)

    async def flush(self) -> None:
        """Write what the read models hold now, and move the checkpoint up to the archive."""
        await self.models.flush()
        if self.archived is not None:
            await self._checkpoint(self.archived)

    async def _checkpoint(self, archived: int) -> None:
        self.archived = archived
        held = self.models.unwritten_from
        through = archived if held is None else held - 1
        if self.saved is None or through > self.saved:
            await self.checkpoints.save(CONSUMER, through)
            self.saved = through
