"""The embedded store's index keys for plain documents (tools/secantus_index_keys.py): the
same keys, in the same order, as SecantusDB's own ``_index_key_variants``, for every
document, whether or not it takes the written-out path.
"""

import datetime
import random
from typing import Any

import pytest
import secantus.sortkey as sortkey
import secantus.storage as storage
from bson import Code, Decimal128, ObjectId

from tools import secantus_index_keys
from tools.secantus_index_keys import IndexKeys, encode_int

LIBRARY = storage._index_key_variants
LIBRARY_MULTIKEY = storage._doc_makes_multikey
UTC = datetime.UTC
INTEGERS = [0, 1, -1, 9, 10, 11, 99, 100, 101, 1000, 120, -120, 2**31, 2**63 - 1, -(2**63)]


@pytest.fixture
def keys() -> IndexKeys:
    return IndexKeys(
        LIBRARY, LIBRARY_MULTIKEY, sortkey.encode_value, sortkey.invert_bytes, sortkey.COMPOUND_SEP
    )


def _value(rnd: random.Random) -> Any:
    kind = rnd.randrange(14)
    if kind < 4:  # strings: NULs, accents, CJK, empty
        return "".join(rnd.choice("ab\u00e9\u4e2d|:_\0") for _ in range(rnd.randint(0, 8)))
    if kind < 8:  # integers: edges, any size, past one exponent byte
        return rnd.choice(
            [
                *INTEGERS,
                rnd.randint(-(10**20), 10**20),
                10 ** rnd.randint(0, 140) + rnd.randrange(2),
            ]
        )
    if kind == 8:
        return None
    if kind == 9:
        stamp = rnd.randint(-(10**10), 10**10) + rnd.random()
        moment = datetime.datetime.fromtimestamp(stamp, UTC).replace(
            microsecond=rnd.randrange(10**6)
        )
        return moment if rnd.random() < 0.5 else moment.replace(tzinfo=None)
    # outside the written-out shape: the library's path
    return rnd.choice(
        [
            1.5,
            -0.0,
            float("nan"),
            True,
            [1, "a", 1],
            [],
            {"x": 1},
            Code("f()"),
            ObjectId(),
            Decimal128("1.10"),
            b"raw",
        ]
    )


def _document(rnd: random.Random, fields: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": rnd.randrange(1000)}
    for field in fields:
        if rnd.random() < 0.85:  # sometimes missing: keyed as null
            doc[field] = _value(rnd)
    if rnd.random() < 0.2:
        doc["sub"] = {"a": _value(rnd), "b": [_value(rnd), {"a": _value(rnd)}]}
    return doc


SPECS: list[dict[str, Any]] = [
    {"position": 1},
    {"position": -1},
    {"tenant": 1, "stream": 1, "position": 1},
    {"tenant": 1, "status": 1, "last_position": -1},
    {"tenant": 1, "ts": 1},
    {"sub.a": 1},
    {"tenant": 1, "sub.b.a": -1},
    {"position": 1.0},
    {"position": True},
]


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda spec: ",".join(f"{k}:{v}" for k, v in spec.items())
)
@pytest.mark.parametrize("sparse", [False, True])
def test_random_documents_get_the_librarys_keys(
    keys: IndexKeys, spec: dict[str, Any], sparse: bool
) -> None:
    rnd = random.Random(f"{spec}{sparse}")
    fields = [field.split(".")[0] for field in spec]
    for _ in range(400):
        doc = _document(rnd, fields)
        assert keys.variants(doc, spec, sparse=sparse) == LIBRARY(doc, spec, sparse=sparse), doc
        assert keys.makes_multikey(doc, spec) == LIBRARY_MULTIKEY(doc, spec), doc


def test_a_remembered_string_key_is_the_same_as_a_fresh_one_in_either_direction(
    keys: IndexKeys,
) -> None:
    for _ in range(3):  # computed once, then remembered
        for spec in ({"tenant": 1}, {"tenant": -1}):
            assert keys.variants({"tenant": "acme"}, spec, sparse=False) == LIBRARY(
                {"tenant": "acme"}, spec, sparse=False
            )


def test_integers_encode_as_the_librarys_decimal_path() -> None:
    around_powers = [10**k + d for k in range(0, 130) for d in (-1, 0, 1)]
    for number in [*range(-3000, 3000), *around_powers, *(-n for n in around_powers)]:
        encoded = encode_int(number)
        assert encoded is None or encoded == sortkey.encode_value(number), number
    assert encode_int(10**27 + 1) == sortkey.encode_value(10**27 + 1)  # 28 digits: exact
    assert encode_int(10**28 + 1) is None  # 29: Decimal rounds them; the library's path
    assert encode_int(10**128) is None  # past one exponent byte: the library's marker


def test_a_collation_or_an_index_kind_it_does_not_know_goes_to_the_library(keys: IndexKeys) -> None:
    seen = []

    def library(*args: Any, **kwargs: Any) -> list[bytes]:
        seen.append(args[1])
        return [b"library"]

    through = IndexKeys(
        library, LIBRARY_MULTIKEY, sortkey.encode_value, sortkey.invert_bytes, sortkey.COMPOUND_SEP
    )
    assert through.variants({"a": "x"}, {"a": 1}, sparse=False, collation=object()) == [b"library"]
    assert through.variants({"a": "x"}, {"a": "hashed"}, sparse=False) == [b"library"]
    assert through.variants({"a": 2.5}, {"a": 1}, sparse=False) == [b"library"]
    assert through.variants({"a": "x"}, {"a": 1}, sparse=False) != [b"library"]
    assert len(seen) == 3


def test_installed_the_store_finds_through_its_indexes_what_it_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Restored after the test: the rest of the suite runs with the library's own keys.
    monkeypatch.setattr(storage, "_index_key_variants", LIBRARY)
    monkeypatch.setattr(storage, "_doc_makes_multikey", LIBRARY_MULTIKEY)
    assert secantus_index_keys.install("9.9", {"1.0"}) is not None  # not compared: left alone
    assert storage._index_key_variants is LIBRARY
    assert secantus_index_keys.install("1.0", {"1.0"}) is None
    assert storage._index_key_variants is not LIBRARY
    assert storage._doc_makes_multikey is not LIBRARY_MULTIKEY

    store = storage.Storage(":memory:", enable_oplog=False)
    try:
        store.create_index("db", "events", "t_s_p", {"tenant": 1, "stream": 1, "position": 1})
        store.create_index("db", "events", "t_p_desc", {"tenant": 1, "position": -1})
        store.create_index("db", "events", "t_ts", {"tenant": 1, "ts": 1})
        start = datetime.datetime(2026, 12, 4, tzinfo=UTC)
        store.insert(
            "db",
            "events",
            [
                {
                    "_id": f"e{n}",
                    "tenant": f"t{n % 2}",
                    "stream": f"s{n % 3}",
                    "position": n * 7 - 500,  # negatives, zero and positives
                    "ts": start + datetime.timedelta(milliseconds=n),
                }
                for n in range(300)
            ],
        )
        queries: list[tuple[dict[str, Any], str, list[int]]] = [
            ({"tenant": "t1", "stream": "s2"}, "t_s_p", [n for n in range(300) if n % 6 == 5]),
            (
                {"tenant": "t0", "position": {"$gte": -100, "$lt": 700}},
                "t_p_desc",
                [n for n in range(300) if n % 2 == 0 and -100 <= n * 7 - 500 < 700],
            ),
            (
                {"tenant": "t1", "ts": {"$gt": start + datetime.timedelta(milliseconds=250)}},
                "t_ts",
                [n for n in range(251, 300) if n % 2 == 1],
            ),
        ]
        for query, index, expected in queries:
            plan = store.explain_plan("db", "events", query, hint=index)
            assert plan["kind"] == "IXSCAN" and plan["index_name"] == index, plan
            found = store.find_matching("db", "events", query, hint=index)
            assert sorted(int(doc["_id"][1:]) for doc in found) == expected, query
    finally:
        store.close()
