"""Audit events: what anchors the archive outside MongoDB."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.base import EventData

MAX_HEADS = 500  # per checkpoint: more changed chains are listed by the next ones
CHECKPOINT_STREAM = "audit:checkpoints"
Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ChainHead(BaseModel):
    """One hash chain of the tenant as history archived it up to the checkpoint's position."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    stream: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    hash: Hex64  # the chain's last hash at that position
    count: int = Field(ge=1)  # events in the chain at that position


class AuditCheckpoint(EventData):
    """history_service's signed statement of a tenant's archive at a log position.

    ``heads`` are the chains that changed since the tenant's previous checkpoint, as
    history itself wrote them (its memory, not a read of the archive), signed with
    Ed25519 under a key MongoDB never holds. ``relaydesk audit verify`` recomputes each
    head from the archive; a deleted tail, an edit with every later hash recomputed, an
    event added or removed shows as a head or count that differs (docs/audit.md).
    Published at intervals and when a conversation closes; never sent to a socket.
    """

    TYPE = "audit.checkpoint"
    DECIDED_BY = None  # history's own timer and conversation closes, never a command's answer
    AUDIENCE = frozenset()  # read by auditors through the archive and exports, no socket
    position: int = Field(ge=0)  # every event of the tenant up to here is covered
    heads: tuple[ChainHead, ...] = Field(min_length=1, max_length=MAX_HEADS)
    key_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")]
    signature: Annotated[str, StringConstraints(min_length=1, max_length=200)]


MODELS = (AuditCheckpoint,)
