"""WiredTiger's key and value packing, compiled once per format for the embedded store.

The wiredtiger Python package packs every cursor key and value with a generic, pure-Python
interpreter of the format string (``packing.pack``: generators re-parsing the format on
every call, the bytes concatenated field by field). SecantusDB's tables use a handful of
formats (``SSSu``, ``SSu``, ``SSq``, ``SS``, ``S``, ``u``, ``q``): some strings, then at
most one raw byte string or integer. Under chat load packing was about a sixth of the
embedded store's CPU (docs/performance.md, "WiredTiger's packing").

For formats of that shape, ``CompiledPacking`` gives the same bytes and the same values
2.5-4 times faster per key: the strings are joined and encoded at once, a non-negative
integer is encoded directly (a negative one by WiredTiger's own ``intpacking``). Anything
else — another format character, a size, a type prefix, a value of another type, a string
holding a NUL, a value count that does not match, a key without its terminators — is
handed to the library's own function, so errors and odd cases stay exactly the library's
(tests/foundation/test_wiredtiger_packing.py compares the two on random keys).
"""

import re
import sys
from collections.abc import Callable
from typing import Any

Pack = Callable[..., bytes]
Unpack = Callable[[str, bytes], Any]
PackInt = Callable[[int], bytes]
UnpackInt = Callable[[bytes], tuple[int, bytes]]

# Strings (``S``: NUL-terminated), then at most one ``u`` (raw bytes, last so unsized) or
# ``q`` (a signed integer in WiredTiger's variable-length encoding).
_STRINGS_THEN_TAIL = re.compile(r"(S*)([uq]?)")
_POS_1BYTE_MAX = 2**6 - 1
_POS_2BYTE_MAX = 2**13 + _POS_1BYTE_MAX
_UINT64_MAX = 2**64 - 1


def format_shape(fmt: str) -> tuple[int, str] | None:
    """How many strings lead ``fmt`` and its tail (``u``, ``q`` or none); None for any
    other format."""
    match = _STRINGS_THEN_TAIL.fullmatch(fmt)
    if not fmt or match is None:
        return None
    return len(match.group(1)), match.group(2)


def non_negative_int_packer(pack_int: PackInt) -> PackInt:
    """WiredTiger's integer packing (``intpacking.pack_int``) with the non-negative cases
    (record ids, sequence numbers) written out; negative and out-of-range ones go to it."""

    def packed_int(number: int) -> bytes:
        if number < 0:
            return pack_int(number)
        if number <= _POS_1BYTE_MAX:
            return bytes((0x80 | number,))
        if number <= _POS_2BYTE_MAX:
            number -= _POS_1BYTE_MAX + 1
            return bytes((0xC0 | (number >> 8), number & 0xFF))
        if number == _POS_2BYTE_MAX + 1:  # kept two bytes long, as the library does
            return b"\xe1\x00"
        number -= _POS_2BYTE_MAX + 1
        if number > _UINT64_MAX:
            return pack_int(number + _POS_2BYTE_MAX + 1)
        digits = number.to_bytes(8, "big").lstrip(b"\0")
        return bytes((0xE0 | len(digits),)) + digits

    return packed_int


def non_negative_int_unpacker(unpack_int: UnpackInt) -> UnpackInt:
    """``intpacking.unpack_int`` with the non-negative markers written out."""

    def unpacked_int(packed: bytes) -> tuple[int, bytes]:
        marker = packed[0] if packed else 0
        if marker < 0x80:
            return unpack_int(packed)
        if marker < 0xC0:
            return marker & 0x3F, packed[1:]
        if marker < 0xE0:
            if len(packed) < 2:
                return unpack_int(packed)
            return _POS_1BYTE_MAX + 1 + (((marker & 0x1F) << 8) | packed[1]), packed[2:]
        size = marker & 0x0F
        if len(packed) <= size:  # cut short: the library's error
            return unpack_int(packed)
        return _POS_2BYTE_MAX + 1 + int.from_bytes(packed[1 : 1 + size], "big"), packed[1 + size :]

    return unpacked_int


def packer_for(shape: tuple[int, str], pack_int: PackInt, fallback: Pack) -> Pack:
    """``pack`` for formats of one shape (``format_shape``)."""
    strings, tail = shape
    width = strings + (1 if tail else 0)

    def pack(fmt: str, *values: Any) -> bytes:
        if len(values) != width:
            return fallback(fmt, *values)
        try:
            joined = "\0".join(values[:strings])  # TypeError when one is not a string
        except TypeError:
            return fallback(fmt, *values)
        if joined.count("\0") != max(strings - 1, 0):  # a NUL inside a string: it truncates
            return fallback(fmt, *values)
        head = (joined + "\0").encode() if strings else b""
        if not tail:
            return head
        last = values[strings]
        if tail == "u" and type(last) is bytes:
            return head + last
        if tail == "q" and type(last) is int:
            return head + pack_int(last)
        return fallback(fmt, *values)

    return pack


def unpacker_for(shape: tuple[int, str], unpack_int: UnpackInt, fallback: Unpack) -> Unpack:
    """``unpack`` for formats of one shape (``format_shape``)."""
    strings, tail = shape

    def unpack(fmt: str, packed: bytes) -> Any:
        if type(packed) is not bytes:
            return fallback(fmt, packed)
        pieces = packed.split(b"\0", strings)
        if len(pieces) <= strings:  # a string without its terminator
            return fallback(fmt, packed)
        values: list[Any] = [piece.decode() for piece in pieces[:strings]]
        if tail == "u":
            values.append(pieces[strings])
        elif tail == "q":
            values.append(unpack_int(pieces[strings])[0])
        return values

    return unpack


class CompiledPacking:
    """``pack`` and ``unpack`` with the library's signatures, compiled per format on first use."""

    def __init__(self, pack: Pack, unpack: Unpack, pack_int: PackInt, unpack_int: UnpackInt):
        self._pack = pack
        self._unpack = unpack
        self._pack_int = non_negative_int_packer(pack_int)
        self._unpack_int = non_negative_int_unpacker(unpack_int)
        self._packers: dict[str, Pack] = {}
        self._unpackers: dict[str, Unpack] = {}

    def pack(self, fmt: str, *values: Any) -> bytes:
        packer = self._packers.get(fmt)
        if packer is None:
            shape = format_shape(fmt)
            packer = self._pack if shape is None else packer_for(shape, self._pack_int, self._pack)
            self._packers[fmt] = packer
        return packer(fmt, *values)

    def unpack(self, fmt: str, packed: bytes) -> Any:
        unpacker = self._unpackers.get(fmt)
        if unpacker is None:
            shape = format_shape(fmt)
            unpacker = (
                self._unpack
                if shape is None
                else unpacker_for(shape, self._unpack_int, self._unpack)
            )
            self._unpackers[fmt] = unpacker
        return unpacker(fmt, packed)


def install() -> str | None:
    """Give the wiredtiger package's cursors the compiled packing; the reason when not.

    The package imports its SWIG module and ``packing`` as top-level modules (it puts its
    own directory on ``sys.path``), and the cursor methods call the ``pack`` / ``unpack``
    names of the SWIG module: those two names are replaced."""
    import wiredtiger  # noqa: F401  (puts the package's modules in sys.modules)

    swig: Any = sys.modules.get("swig_wiredtiger")
    intpacking = sys.modules.get("wiredtiger.intpacking")
    if swig is None or intpacking is None:
        return "the wiredtiger package has changed shape (no swig_wiredtiger / intpacking)"
    pack, unpack = getattr(swig, "pack", None), getattr(swig, "unpack", None)
    if not callable(pack) or not callable(unpack):
        return "the wiredtiger package has changed shape (no pack / unpack)"
    compiled = CompiledPacking(pack, unpack, intpacking.pack_int, intpacking.unpack_int)
    swig.pack = compiled.pack
    swig.unpack = compiled.unpack
    return None
