"""Whole-collection finds in index order answer with the stored bytes
(tools/secantus_raw_reads.py): the same documents in the same order, as
``RawBSONDocument``s only where nothing reads their fields.

The storage engine is driven in-process on a subclass of SecantusDB's ``Storage`` of its
own (the class SecantusDB ships stays untouched), as the server's connection threads do;
the last test asks the embedded server every test uses, where it is installed.
"""

import datetime
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import bson
import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from secantus.storage import Storage

from tools.embedded_store import PATCHED_RELEASES
from tools.secantus_raw_reads import answerable_as_stored, answering_as_stored, install

WHEN = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC).replace(tzinfo=None)


def _event(n: int) -> dict[str, Any]:
    """An archive-shaped row: nested data, an array, a date, a null."""
    return {
        "_id": f"e{n:04d}",
        "position": n,
        "tenant": "t",
        "stream": f"conv:c{n % 3}",
        "data": {"body": f"hello {n}", "tags": ["a", n], "reply_to": None},
        "ts": WHEN + datetime.timedelta(seconds=n),
        "size": n % 5,
    }


@pytest.fixture
def engine() -> Iterator[Storage]:
    class Patched(Storage):  # type: ignore[misc]
        pass

    assert (
        install(
            version("SecantusDB"), PATCHED_RELEASES, engine=Patched, handlers={"find": _no_find}
        )
        is None
    )
    storage = Patched(":memory:", enable_oplog=False)
    storage.create_index("db", "events", "position_1", {"position": 1})
    # Inserted out of order, so the natural order is not the index's.
    storage.insert("db", "events", [_event(n) for n in (5, 1, 4, 0, 3, 2, 7, 6)])
    yield storage
    storage.close()


def _no_find(*_: object) -> None:  # the command layer is not driven here
    raise AssertionError("not called")


def _decoded(docs: list[Any]) -> list[dict[str, Any]]:
    return [bson.decode(d.raw) if isinstance(d, RawBSONDocument) else d for d in docs]


def test_an_eligible_find_gets_the_stored_documents_in_index_order(engine: Storage) -> None:
    plain = engine.find_matching("db", "events", {}, sort={"position": 1})
    assert [d["position"] for d in plain] == list(range(8))
    assert all(type(d) is dict for d in plain)  # outside an eligible find: as before
    with answering_as_stored():
        stored = engine.find_matching("db", "events", {}, sort={"position": 1})
        backwards = engine.find_matching("db", "events", {}, sort={"position": -1}, skip=2, limit=3)
    assert all(isinstance(d, RawBSONDocument) for d in stored + backwards)
    assert _decoded(stored) == plain
    assert _decoded(backwards) == plain[::-1][2:5]


def test_finds_that_read_fields_still_get_dicts(engine: Storage) -> None:
    with answering_as_stored():
        filtered = engine.find_matching("db", "events", {"size": {"$gte": 2}}, sort={"position": 1})
        sorted_in_python = engine.find_matching("db", "events", {}, sort={"size": 1, "_id": 1})
    assert all(type(d) is dict for d in filtered + sorted_in_python)
    assert [d["position"] for d in filtered] == [2, 3, 4, 7]
    assert [(d["size"], d["_id"]) for d in sorted_in_python] == sorted(
        (d["size"], d["_id"]) for d in sorted_in_python
    )


@pytest.mark.parametrize(
    ("command", "eligible"),
    [
        ({"find": "events"}, True),
        ({"find": "events", "filter": {}, "sort": {"position": 1}, "batchSize": 10}, True),
        ({"find": "events", "filter": {"tenant": "t"}}, False),
        ({"find": "events", "projection": {"data": 0}}, False),
        ({"find": "events", "collation": {"locale": "fr"}}, False),
        ({"find": "events", "showRecordId": True}, False),
        ({"find": "events", "returnKey": True}, False),
        ({"find": "events", "tailable": True}, False),
        ({"find": "events", "hint": "position_1", "sort": {"size": 1}}, False),
        ({"find": "events", "min": {"position": 2}, "hint": "position_1"}, False),
    ],
)
def test_only_a_find_that_looks_into_no_document_is_answered_as_stored(
    command: dict[str, Any], eligible: bool
) -> None:
    assert answerable_as_stored(command) is eligible


async def test_the_embedded_server_answers_the_same_documents_either_way(
    mongo_url: str, mongo_db_name: str
) -> None:
    """Through the wire: a small batch size (getMore after getMore) and the decoded path
    (a filter every row matches) give the same rows in the same order."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        events = client[mongo_db_name]["events"]
        await events.create_index("position")
        await events.insert_many([_event(n) for n in (3, 1, 2, 0, 9, 8, 4, 5, 7, 6)])
        as_stored = [d async for d in events.find({}).sort("position", 1).batch_size(3)]
        decoded = [d async for d in events.find({"position": {"$gte": 0}}).sort("position", 1)]
        assert [d["position"] for d in as_stored] == list(range(10))
        assert as_stored == decoded
    finally:
        await client.drop_database(mongo_db_name)
        await client.close()
