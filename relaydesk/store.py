"""MongoDB access: PyMongo's async client, and beanie documents bound per database.

The client is created with retryable reads/writes and a short server selection timeout,
and PyMongo reconnects by itself after a server restart; callers that must not lose a
write wrap it in :func:`with_store_retry`.

Documents (read models, checkpoints, snapshots, delivery logs…) are beanie ``Document``
classes with typed fields and their indexes declared on the model. beanie binds a class
to one database for the whole process, but one process may hold several databases at
once: the test suite runs many systems side by side, the replay tool rebuilds read models
in a scratch database next to the live one, an import fills a fresh one. So a model is
never bound itself: :func:`bind_documents` binds a subclass of it to one database object
(``init_beanie``, which also creates the declared indexes), and :func:`bound` hands that
subclass to the code working on the same database object. A service binds its models once
at start; a store given a database that nothing bound yet binds on first use.
"""

import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import structlog
from beanie import Document
from beanie.odm.enums import SortDirection
from beanie.odm.queries.find import FindMany
from beanie.odm.utils.init import Initializer
from pymongo import AsyncMongoClient, WriteConcern
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
D = TypeVar("D", bound=Document)
Row = dict[str, Any]  # a MongoDB document as PyMongo returns it

TRANSIENT = (AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError)
JOURNALED = WriteConcern(j=True)


# A pooled connection unused this long is dropped, not reused. The embedded store closes a
# client connection idle for 5 minutes (SecantusDB's client idle timeout; firewalls and load
# balancers in front of a real MongoDB do the like), and the driver learned of it only by
# using it: the first sign-in after five quiet minutes answered 500 (AutoReconnect, and a
# standalone server takes no retried write).
MAX_IDLE_MS = 60_000


def make_client(mongo_url: str) -> AsyncMongoClient[Row]:
    return AsyncMongoClient(
        mongo_url,
        serverSelectionTimeoutMS=3000,
        retryWrites=True,
        retryReads=True,
        tz_aware=True,
        maxIdleTimeMS=MAX_IDLE_MS,
    )


def database(client: AsyncMongoClient[Row], name: str) -> AsyncDatabase[Row]:
    return client[name]


# Bound subclasses per database object (by identity: two AsyncDatabase objects for the
# same name compare equal even when one's client is closed). An entry goes when its
# database object is collected; the bound classes hold a copy of it, not the key itself.
_BINDINGS: dict[int, dict[type[Document], type[Document]]] = {}


def _bindings_of(db: AsyncDatabase[Row]) -> dict[type[Document], type[Document]]:
    key = id(db)
    if key not in _BINDINGS:
        _BINDINGS[key] = {}
        weakref.finalize(db, _BINDINGS.pop, key, None)
    return _BINDINGS[key]


async def bind_documents(db: AsyncDatabase[Row], models: Iterable[type[Document]]) -> None:
    """Bind ``models`` to ``db`` (``init_beanie``: creates their declared indexes).

    Call once at a service's start with the models the service owns; a model bound to
    this database object already is left as it is.
    """
    bindings = _bindings_of(db)
    wanted = [m for m in dict.fromkeys(models) if m not in bindings]
    if not wanted:
        return
    fresh = {m: type(m.__name__, (m,), {"__module__": m.__module__}) for m in wanted}
    initializer = Initializer(
        database=db.with_options(),  # a copy: the bindings must not keep the key alive
        document_models=list(fresh.values()),
    )
    # beanie initialises a document's parent class too (for inheritance) and sets class
    # attributes on it; marked done, the model itself stays unbound and can be subclassed
    # again for the next database.
    initializer.inited_classes.extend(wanted)
    await initializer
    for model, subclass in fresh.items():
        bindings.setdefault(model, subclass)


async def bound(db: AsyncDatabase[Row], model: type[D]) -> type[D]:
    """``model`` bound to ``db``: queries and writes through it go to that database."""
    bindings = _bindings_of(db)
    if model not in bindings:
        await bind_documents(db, [model])
    subclass: type[D] = bindings[model]  # the model's own subclass: keyed by the model
    return subclass


def ascending(field: object) -> tuple[str, SortDirection]:
    """A sort on a model's field (``Model.field``, typed) in ascending order."""
    return str(field), SortDirection.ASCENDING


def descending(field: object) -> tuple[str, SortDirection]:
    return str(field), SortDirection.DESCENDING


async def stored_rows(query: FindMany[Any]) -> AsyncGenerator[Row, None]:
    """The stored documents a typed query finds, as PyMongo returns them (no model parse).

    For reads that must see exactly what is stored (the hash-chained archive) or that
    scan so much that a model per document would be the cost (whole-archive folds).
    """
    cursor = await query.get_cursor()
    assert cursor is not None  # None only for queries with links, which we do not declare
    async for row in cursor:
        yield row


# Ids asked for per ``$in`` query when a caller looks many up at once. The embedded server
# (SecantusDB) matches every document it finds against the whole ``$in`` list again, so one
# query for n ids costs it ~n²/2 comparisons: history's fold of a busy second asked for ~200
# conversations in one query, a tenth of the store's time (docs/performance.md). A real
# MongoDB costs the same either way, less a few round trips.
IDS_PER_QUERY = 32


def id_chunks(ids: list[T]) -> Iterator[list[T]]:
    """``ids`` in runs of :data:`IDS_PER_QUERY`, one ``$in`` query each."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


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


class Checkpoint(Document):
    """A log consumer's stored offset (``_id`` = the consumer's name)."""

    id: str  # type: ignore[assignment]
    position: int

    class Settings:
        name = "checkpoints"


class Checkpoints:
    """Each log consumer's stored offset, kept beside the state it derives (design decision 1).

    ``document`` names the collection: a subclass of :class:`Checkpoint` with its own
    ``Settings.name`` keeps another family of offsets apart (the webhook workers').
    """

    def __init__(self, db: AsyncDatabase[Row], document: type[Checkpoint] = Checkpoint) -> None:
        self._db, self._document = db, document

    async def load(self, consumer: str) -> int | None:
        doc = await (await bound(self._db, self._document)).get(consumer)
        return None if doc is None else doc.position

    async def save(self, consumer: str, position: int) -> None:
        """Store ``position``, journaled (write concern ``j``) before it returns.

        Journaled because the state a consumer derived is written before its position with
        the default write concern, which a server killed at the wrong moment may lose even
        though it acknowledged it (MongoDB and SecantusDB flush the journal on their own
        schedule). The journal is one sequence: once this write is in it, everything the
        consumer wrote before is too. Without it, a store restarted under a running
        consumer could lose a batch the consumer had moved past (found by killing the
        store of `relaydesk up` while messages flowed: archive positions went missing).
        """
        model = await bound(self._db, self._document)
        journaled = model.get_pymongo_collection().with_options(write_concern=JOURNALED)
        # $max with upsert: a stale save never moves an offset back, and the first creates it.
        await journaled.update_one(
            {"_id": consumer}, {"$max": {str(model.position): position}}, upsert=True
        )
