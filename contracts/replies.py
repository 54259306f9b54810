"""What a command's single writer answers: the one reply shape every decider uses."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class CommandReply(BaseModel):
    """What a command's owner answers: accepted with the events it emitted, or rejected."""

    model_config = ConfigDict(frozen=True)
    ok: bool
    event_ids: tuple[str, ...] = ()
    code: str | None = None
    message: str | None = None
    data: dict[str, Any] = {}
