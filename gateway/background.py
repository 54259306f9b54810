"""Fire-and-forget work of the gateway (a frame handled, a lost connection reported)."""

import asyncio
from collections.abc import Coroutine
from typing import Any

# The event loop holds tasks only weakly: keep each fire-and-forget task until it is done.
_background: set[asyncio.Task[None]] = set()


def in_background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)
