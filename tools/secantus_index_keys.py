"""SecantusDB's index keys for plain documents, computed without its general machinery.

For every document written, SecantusDB computes each secondary index's keys with
``_index_key_variants``: the general case (dotted paths through arrays, multikey cartesian
products, sparse and collation rules) walked field by field, and every value's sort-key
bytes built through a type ladder and, for numbers, a ``Decimal``. The archive's rows are
plain (top-level strings, integers, dates), and under chat load computing their keys was
about a quarter of the embedded store's CPU (docs/performance.md, "The store's index keys").

``IndexKeys.variants`` gives the same keys, in the same order, for an index whose fields
are top-level names with an ascending or descending direction, over a document whose
values there are strings, integers, dates or absent, with no collation and not sparse: a
string's key is remembered (tenants, conversations and statuses repeat on every row), an
integer's is written out (the digits in pairs, as the library's ``Decimal`` path does).
Whether a row makes an index multikey (an array on one of its fields) is answered the same
way for top-level names. Anything else — a dotted path, an array, a sub-document, a float,
a ``bson`` type, a collation, a sparse index — goes to the library's own function, so what
it does for every other case stays exactly its own (tests/foundation/
test_secantus_index_keys.py compares the two on random documents).
"""

import datetime
from collections.abc import Callable, Collection, Mapping
from typing import Any

Variants = Callable[..., list[bytes]]
Encode = Callable[..., bytes]

RANK_NULL = b"\x02"
RANK_NUMBER = 0x03
_NUM_ZERO = b"\x80"
_NUM_NEG = 0x40
_NUM_POS = 0xC0
_MAX_BIASED_EXPONENT = 255  # one byte: larger magnitudes take the library's marker
# ``Decimal.normalize`` rounds to the default context's 28 digits: longer ones are the library's
_DECIMAL_DIGITS = 28
_REMEMBERED_STRINGS = 65_536  # keys kept before the memo starts afresh (bounded memory)
_MISSING = object()


def encode_int(number: int) -> bytes | None:
    """The sort key of an ``int`` (rank byte included), as ``encode_value`` builds it through
    ``Decimal``: sign prefix, biased decimal exponent, the significant digits two to a byte
    (each pair + 1, inverted for negatives), terminator. None past one exponent byte or past
    the 28 significant digits ``Decimal`` keeps (the library rounds those)."""
    if number == 0:
        return bytes((RANK_NUMBER,)) + _NUM_ZERO
    digits = str(-number if number < 0 else number)
    biased = 128 + len(digits) - 1
    if biased > _MAX_BIASED_EXPONENT:
        return None
    significant = digits.rstrip("0")
    if len(significant) > _DECIMAL_DIGITS:
        return None
    if len(significant) % 2:
        significant += "0"
    pairs = [int(significant[i : i + 2]) + 1 for i in range(0, len(significant), 2)]
    if number > 0:
        return bytes((RANK_NUMBER, _NUM_POS, biased, *pairs, 0))
    return bytes((RANK_NUMBER, _NUM_NEG, 0xFF - biased, *(0x64 - p for p in pairs), 0xFF))


class IndexKeys:
    """``_index_key_variants`` and ``_doc_makes_multikey`` with the plain case written out;
    the library's functions for everything else."""

    def __init__(
        self,
        variants: Variants,
        makes_multikey: Callable[[Mapping[str, Any], Mapping[str, Any]], bool],
        encode_value: Encode,
        invert_bytes: Callable[[bytes], bytes],
        compound_separator: bytes,
    ) -> None:
        self._variants = variants
        self._makes_multikey = makes_multikey
        self._encode_value = encode_value
        self._invert = invert_bytes
        self._separator = compound_separator
        self._strings: dict[tuple[str, int], bytes] = {}

    def variants(
        self,
        doc: Mapping[str, Any],
        key_spec: Mapping[str, Any],
        *,
        sparse: bool,
        collation: Any = None,
    ) -> list[bytes]:
        if sparse or collation is not None:
            return self._variants(doc, key_spec, sparse=sparse, collation=collation)
        parts = []
        for field, direction in key_spec.items():
            if (direction != 1 and direction != -1) or type(direction) is not int or "." in field:
                return self._variants(doc, key_spec, sparse=sparse, collation=collation)
            part = self._key(doc.get(field, _MISSING), direction)
            if part is None:
                return self._variants(doc, key_spec, sparse=sparse, collation=collation)
            parts.append(part)
        return [parts[0] if len(parts) == 1 else self._separator.join(parts)]

    def makes_multikey(self, doc: Mapping[str, Any], key_spec: Mapping[str, Any]) -> bool:
        """``_doc_makes_multikey``: does ``doc`` hold an array on a field of the index? For
        top-level names that is the value being a list; a dotted path is the library's."""
        for field in key_spec:
            if "." in field:
                return self._makes_multikey(doc, key_spec)
        return any(isinstance(doc.get(field), list) for field in key_spec)

    def _key(self, value: Any, direction: int) -> bytes | None:
        kind = type(value)
        if kind is str:
            remembered = self._strings.get((value, direction))
            if remembered is None:
                if len(self._strings) >= _REMEMBERED_STRINGS:
                    self._strings.clear()
                remembered = self._directed(self._encode_value(value), direction)
                self._strings[(value, direction)] = remembered
            return remembered
        if kind is int:
            encoded = encode_int(value)
            return None if encoded is None else self._directed(encoded, direction)
        if value is None or value is _MISSING:  # mongod indexes a missing field as null
            return self._directed(RANK_NULL, direction)
        if kind is datetime.datetime:
            return self._directed(self._encode_value(value), direction)
        return None

    def _directed(self, key: bytes, direction: int) -> bytes:
        return key if direction == 1 else self._invert(key)


def install(release: str, written_for: Collection[str]) -> str | None:
    """Replace ``secantus.storage._index_key_variants`` and ``_doc_makes_multikey``; the
    reason when they are left alone. Tied to the releases they were compared against
    (``written_for``): they mirror private functions, which another release may change."""
    if release not in written_for:
        return f"SecantusDB {release} is not a release its index keys were compared against"
    import secantus.sortkey as sortkey
    import secantus.storage as storage

    missing = [
        name
        for name in ("encode_value", "invert_bytes", "COMPOUND_SEP")
        if not hasattr(sortkey, name)
    ]
    missing += [
        name
        for name in ("_index_key_variants", "_doc_makes_multikey")
        if not callable(getattr(storage, name, None))
    ]
    if missing:
        return f"SecantusDB's index keys have changed shape ({', '.join(missing)})"
    keys = IndexKeys(
        storage._index_key_variants,
        storage._doc_makes_multikey,
        sortkey.encode_value,
        sortkey.invert_bytes,
        sortkey.COMPOUND_SEP,
    )
    storage._index_key_variants = keys.variants
    storage._doc_makes_multikey = keys.makes_multikey
    return None
