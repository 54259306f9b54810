"""The embedded store's compiled WiredTiger packing (tools/wiredtiger_packing.py): the same
bytes and values as the wiredtiger package's own ``pack`` / ``unpack``, and its errors.
"""

import random
import sys
from collections.abc import Callable
from typing import Any

import pytest
import wiredtiger  # noqa: F401  (loads the package's top-level swig_wiredtiger module)
from secantus.storage import Storage
from wiredtiger.intpacking import pack_int, unpack_int

from tools import wiredtiger_packing
from tools.wiredtiger_packing import (
    CompiledPacking,
    non_negative_int_packer,
    non_negative_int_unpacker,
)

SWIG = sys.modules["swig_wiredtiger"]
LIBRARY_PACK: Callable[..., bytes] = SWIG.pack
LIBRARY_UNPACK: Callable[[str, bytes], Any] = SWIG.unpack

# SecantusDB's table formats, then formats outside the compiled shape (library's path).
FORMATS = ("S", "SS", "SSS", "SSu", "SSSu", "SSq", "Sq", "q", "u", "uS", "qu", "uu", "SuSu")
INTEGER_EDGES = [0, 1, 63, 64, 8255, 8256, 8257, 2**32, 2**63 - 1, -1, -64, -65, -8256, -8257]


@pytest.fixture
def compiled() -> CompiledPacking:
    return CompiledPacking(LIBRARY_PACK, LIBRARY_UNPACK, pack_int, unpack_int)


def _value(char: str, rnd: random.Random) -> Any:
    if char == "S":  # NULs included: the library truncates a string at its first
        return "".join(rnd.choice("ab\u00e9\u4e2d|:_\0") for _ in range(rnd.randint(0, 12)))
    if char == "u":
        return rnd.randbytes(rnd.randint(0, 20))
    return rnd.choice([*INTEGER_EDGES, rnd.randint(-(2**63), 2**63 - 1)])


@pytest.mark.parametrize("fmt", FORMATS)
def test_random_fields_pack_and_unpack_as_the_library_does(
    fmt: str, compiled: CompiledPacking
) -> None:
    rnd = random.Random(fmt)
    for _ in range(500):
        values = [_value(char, rnd) for char in fmt]
        packed = LIBRARY_PACK(fmt, *values)
        assert compiled.pack(fmt, *values) == packed, values
        assert compiled.unpack(fmt, packed) == LIBRARY_UNPACK(fmt, packed), values


def test_integers_pack_as_the_library_does_across_every_encoding_boundary() -> None:
    packed_int = non_negative_int_packer(pack_int)
    unpacked_int = non_negative_int_unpacker(unpack_int)
    around_powers = [2**k + d for k in range(6, 64) for d in (-1, 0, 1)]
    for number in [*range(-9000, 9000), *around_powers, *(-n for n in around_powers)]:
        if not -(2**63) <= number < 2**64:
            continue
        assert packed_int(number) == pack_int(number), number
        # Followed by more key bytes, as inside a key: the remainder must come back too.
        assert unpacked_int(pack_int(number) + b"next") == unpack_int(pack_int(number) + b"next")


@pytest.mark.parametrize(
    ("fmt", "values"),
    [
        ("S", (b"bytes",)),  # not a string
        ("SSq", ("a", "b", "1")),  # not an integer
        ("SSSu", ("a", "b", "c")),  # a value short
        ("q", (2**64 + 9000,)),  # out of range
    ],
)
def test_what_the_library_refuses_is_refused_the_same_way(
    fmt: str, values: tuple[Any, ...], compiled: CompiledPacking
) -> None:
    with pytest.raises(Exception) as by_library:
        LIBRARY_PACK(fmt, *values)
    with pytest.raises(type(by_library.value)):
        compiled.pack(fmt, *values)


def test_a_key_cut_short_is_read_by_the_library(compiled: CompiledPacking) -> None:
    cut = LIBRARY_PACK("SSSu", "db", "coll", "index", b"key")[:5]  # "db\0co"
    assert compiled.unpack("SSSu", cut) == LIBRARY_UNPACK("SSSu", cut)


def test_installed_the_store_reads_back_what_it_wrote(monkeypatch: pytest.MonkeyPatch) -> None:
    # Restored after the test: the rest of the suite runs with the library's own packing.
    monkeypatch.setattr(SWIG, "pack", LIBRARY_PACK)
    monkeypatch.setattr(SWIG, "unpack", LIBRARY_UNPACK)
    assert wiredtiger_packing.install() is None
    assert SWIG.pack is not LIBRARY_PACK

    storage = Storage(":memory:", enable_oplog=False)
    try:
        storage.create_index("db", "events", "tenant_1_stream_1", {"tenant": 1, "stream": 1})
        storage.insert(
            "db",
            "events",
            [{"_id": f"e{n}", "tenant": "t", "stream": f"s{n % 3}", "n": n} for n in range(300)],
        )
        found = list(storage.find_matching("db", "events", {"tenant": "t", "stream": "s1"}))
        assert sorted(doc["n"] for doc in found) == list(range(1, 300, 3))
    finally:
        storage.close()
