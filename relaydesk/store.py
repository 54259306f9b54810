"""MongoDB access: PyMongo's async client (beanie 2 for read models where it helps).

The client is created with retryable reads/writes and a short server selection timeout,
and PyMongo reconnects by itself after a server restart; callers that must not lose a
write wrap it in :func:`with_store_retry`.
"""

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import structlog
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

log = structlog.get_logger(__name__)
T = TypeVar("T")
Document = dict[str, Any]  # a MongoDB document as PyMongo returns it

TRANSIENT = (AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError)


def make_client(mongo_url: str) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        mongo_url, serverSelectionTimeoutMS=3000, retryWrites=True, retryReads=True, tz_aware=True
    )


def database(client: AsyncMongoClient[Document], name: str) -> AsyncDatabase[Document]:
    return client[name]


async def init_beanie_models(db: AsyncDatabase[Document], models: Iterable[type]) -> None:
    """Register beanie documents on ``db`` (creates their indexes)."""
    from beanie import init_beanie

    await init_beanie(database=db, document_models=list(models))


async def with_store_retry(operation: Callable[[], Awaitable[T]], *, max_s: float = 60.0) -> T:
    """Run ``operation`` until it succeeds or ``max_s`` passes, backing off on outages."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
        stop=stop_after_delay(max_s),
        reraise=True,
    ):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                log.warning("store_retry", attempt=attempt.retry_state.attempt_number)
            return await operation()
    raise AssertionError("unreachable")


class Checkpoints:
    """Each log consumer's stored offset, kept beside the state it derives (design decision 1)."""

    def __init__(self, db: AsyncDatabase[Document], collection: str = "checkpoints") -> None:
        self._collection = db[collection]

    async def load(self, consumer: str) -> int | None:
        doc = await self._collection.find_one({"_id": consumer})
        return None if doc is None else int(doc["position"])

    async def save(self, consumer: str, position: int, session: Any = None) -> None:
        await self._collection.update_one(
            {"_id": consumer}, {"$max": {"position": position}}, upsert=True, session=session
        )
