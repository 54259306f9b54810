"""The embedded store's catalog memo (tools/embedded_store.py): fewer catalog reads per write,
the same answers.

Each test installs the memo on a subclass of SecantusDB's ``Storage`` of its own (the class
SecantusDB ships stays untouched) and drives that storage engine in-process, as the server's
connection threads do.
"""

from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
from secantus.storage import Storage

from tools.embedded_store import CatalogMemo, flat_filter, install


def _engine(counted: list[tuple[str, str]], *, memo: bool) -> Storage:
    class Counted(Storage):  # type: ignore[misc]
        def _iter_indexes(self, db: str, coll: str) -> Iterator[Any]:
            counted.append((db, coll))
            return super()._iter_indexes(db, coll)  # type: ignore[no-any-return]

    class Memoised(Counted):
        pass

    engine_class = Memoised
    if memo:
        assert install(Memoised, version("SecantusDB"), CatalogMemo()) is None
    return engine_class(":memory:", enable_oplog=False)  # type: ignore[no-any-return]


@pytest.fixture
def engine() -> Iterator[tuple[Storage, list[tuple[str, str]]]]:
    reads: list[tuple[str, str]] = []
    storage = _engine(reads, memo=True)
    yield storage, reads
    storage.close()


def _archive_indexes(storage: Storage) -> None:
    storage.create_index("db", "events", "position_1", {"position": 1})
    storage.create_index("db", "events", "tenant_1_stream_1", {"tenant": 1, "stream": 1})
    storage.create_index("db", "events", "seq_1", {"seq": 1}, {"unique": True})


def _events(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"_id": f"e{n}", "position": n, "tenant": "t", "stream": f"s{n % 3}", "seq": n}
        for n in range(first, first + count)
    ]


def test_a_batch_insert_reads_the_catalog_a_fixed_number_of_times() -> None:
    """Before the memo, every document of a batch read the catalog several times over."""
    reads_by_mode = {}
    for memo in (False, True):
        reads: list[tuple[str, str]] = []
        storage = _engine(reads, memo=memo)
        try:
            _archive_indexes(storage)
            reads.clear()
            inserted, errors = storage.insert("db", "events", _events(0, 200))
            assert (inserted, errors) == (200, [])
            reads_by_mode[memo] = len(reads)
        finally:
            storage.close()

    assert reads_by_mode[False] >= 3 * 200  # what SecantusDB does on its own
    assert reads_by_mode[True] <= 2  # once per chunk transaction


def test_single_document_updates_read_the_catalog_once_each(
    engine: tuple[Storage, list[tuple[str, str]]],
) -> None:
    storage, reads = engine
    _archive_indexes(storage)
    storage.insert("db", "events", _events(0, 10))
    reads.clear()
    for n in range(10):
        storage.update_matching(
            "db", "events", {"_id": f"e{n}"}, {"$set": {"stream": "moved", "position": 100 + n}}
        )

    assert len(reads) <= 10
    moved = storage.find_matching("db", "events", {"stream": "moved"}, hint="tenant_1_stream_1")
    assert sorted(doc["position"] for doc in moved) == list(range(100, 110))


def test_unique_indexes_still_refuse_duplicates_within_one_batch(
    engine: tuple[Storage, list[tuple[str, str]]],
) -> None:
    storage, _ = engine
    _archive_indexes(storage)
    batch = [*_events(0, 5), {"_id": "dup", "position": 9, "tenant": "t", "stream": "s", "seq": 2}]

    inserted, errors = storage.insert("db", "events", batch, ordered=False)

    assert inserted == 5
    assert [(error["index"], error["code"]) for error in errors] == [(5, 11000)]


def test_an_index_turned_multikey_mid_batch_is_seen_by_the_rest_of_the_batch(
    engine: tuple[Storage, list[tuple[str, str]]],
) -> None:
    """The one catalog write a batch makes itself (marking an index multikey) lands, and the
    index still finds every document: the memo drops what it kept when the batch writes."""
    storage, _ = engine
    storage.create_index("db", "tags", "tag_1", {"tag": 1})
    batch = [
        {"_id": 1, "tag": "a"},
        {"_id": 2, "tag": ["b", "c"]},  # marks tag_1 multikey inside the batch's transaction
        {"_id": 3, "tag": ["c", "d"]},
        {"_id": 4, "tag": "c"},
    ]

    assert storage.insert("db", "tags", batch) == (4, [])

    indexes = {name: options for name, _key, options in storage._iter_indexes("db", "tags")}
    assert indexes["tag_1"].get("multikey") is True
    found = storage.find_matching("db", "tags", {"tag": "c"})
    assert sorted(doc["_id"] for doc in found) == [2, 3, 4]


def test_an_index_created_between_batches_gets_the_next_batch(
    engine: tuple[Storage, list[tuple[str, str]]],
) -> None:
    storage, _ = engine
    storage.insert("db", "events", _events(0, 5))
    _archive_indexes(storage)

    storage.insert("db", "events", _events(5, 5))
    dropped = storage.drop_index("db", "events", "seq_1")
    storage.insert("db", "events", [{"_id": "again", "position": 11, "tenant": "t", "seq": 3}])

    assert dropped
    by_index = storage.find_matching("db", "events", {"stream": "s1"}, hint="tenant_1_stream_1")
    assert sorted(doc["position"] for doc in by_index) == [1, 4, 7]


def test_another_release_is_left_as_shipped() -> None:
    class Untouched(Storage):  # type: ignore[misc]
        pass

    reason = install(Untouched, "0.8.0", CatalogMemo())

    assert reason is not None and "0.8.0" in reason
    assert "_iter_indexes" not in vars(Untouched)


def test_and_filters_use_the_index_the_flat_filter_would() -> None:
    """beanie sends ``find(a, b)`` as ``{$and: [a, b]}``; SecantusDB planned that as a
    collection scan (the archive's chain-head lookup per new conversation: seconds each at
    90,000 events, history stalled for minutes)."""
    plain = Storage(":memory:", enable_oplog=False)
    reads: list[tuple[str, str]] = []
    fixed = _engine(reads, memo=True)
    try:
        for storage in (plain, fixed):
            _archive_indexes(storage)
            storage.insert("db", "events", _events(0, 60))
        chain = {"$and": [{"tenant": "t"}, {"stream": "s1"}]}
        newest = {"position": -1}

        assert plain.explain_plan("db", "events", chain, sort=newest)["kind"] == "COLLSCAN"
        plan = fixed.explain_plan("db", "events", chain, sort=newest)
        assert (plan["kind"], plan["index_name"]) == ("IXSCAN", "tenant_1_stream_1")
        found = fixed.find_matching("db", "events", chain, sort=newest, limit=1)
        assert [doc["position"] for doc in found] == [58]
    finally:
        plain.close()
        fixed.close()


@pytest.mark.parametrize(
    ("query", "flat"),
    [
        ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}),
        ({"c": 3, "$and": [{"a": 1}]}, {"c": 3, "a": 1}),
        ({"$and": [{"p": {"$gt": 1}}, {"p": {"$lt": 5}}]}, {"p": {"$gt": 1, "$lt": 5}}),
        (
            {"$and": [{"p": {"$gt": 1}}, {"p": {"$gt": 2}}]},
            {"p": {"$gt": 1}, "$and": [{"p": {"$gt": 2}}]},
        ),
        ({"$and": [{"a": 1}, {"a": 2}]}, {"a": 1, "$and": [{"a": 2}]}),
        (
            {"$and": [{"a": 1}, {"$or": [{"b": 1}, {"c": 1}]}]},
            {"a": 1, "$and": [{"$or": [{"b": 1}, {"c": 1}]}]},
        ),
        ({"$and": [{"$and": [{"a": 1}, {"b": 2}]}, {"c": 3}]}, {"a": 1, "b": 2, "c": 3}),
        ({"a": 1}, {"a": 1}),
    ],
)
def test_flat_filter_folds_only_what_means_the_same(query: dict[str, Any], flat: Any) -> None:
    assert flat_filter(query) == flat


def test_folded_filters_find_what_the_and_form_finds() -> None:
    """Same documents either way, arrays and missing fields included (SecantusDB's own
    matcher on both forms, no index involved)."""
    storage = Storage(":memory:", enable_oplog=False)
    try:
        docs = [
            {"_id": 1, "p": 3, "t": "x"},
            {"_id": 2, "p": [0, 9], "t": "x"},
            {"_id": 3, "p": 7, "t": "y"},
            {"_id": 4, "t": "x"},
            {"_id": 5, "p": [4], "t": ["x", "y"]},
        ]
        storage.insert("db", "c", docs)
        queries = [
            {"$and": [{"p": {"$gt": 2}}, {"p": {"$lt": 8}}, {"t": "x"}]},
            {"$and": [{"t": "x"}, {"p": {"$exists": False}}]},
            {"$and": [{"t": "x"}, {"$or": [{"p": 3}, {"p": 9}]}]},
        ]
        for query in queries:
            as_and = sorted(d["_id"] for d in storage.find_matching("db", "c", query))
            as_flat = sorted(d["_id"] for d in storage.find_matching("db", "c", flat_filter(query)))
            assert as_flat == as_and, query
    finally:
        storage.close()
