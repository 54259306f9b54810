"""Faster paths through rstream for the two frames every chunk of the log costs a reader.

rstream (1.1) decodes every frame with its generic, field-by-field decoder (a ``BytesIO``, a
``typing`` lookup and a ``from_bytes`` per field) and encodes every frame the same way.
Per chunk of the log a reader receives one ``Deliver`` frame and sends one ``Credit``
frame, and per batch a publisher receives one ``PublishConfirm``; measured here the generic
decode of a one-entry ``Deliver`` costs ten times the one below (~43 against ~4 µs on the
loaded benchmark machine), more than the rest of reading an entry together, and under
chat load a chunk holds one to a few entries (docs/performance.md). These frames have a
fixed layout (RabbitMQ's stream protocol, version 1), so they are packed and unpacked here
with one ``struct`` call each; every other frame goes through rstream's own codec
unchanged. ``Deliver`` is still built by rstream's dataclass, whose ``__post_init__``
checks the data length, the chunk type and the CRC as before.

rstream also reads its socket 256 bytes at a time (``rstream.connection.CHUNK_SIZE``),
appending each read to a bytearray: a chunk of 50 KB is 200 reads and quadratic copying.
A reader under load or catching up receives chunks that large; 64 KiB per read (the
default limit of asyncio's stream reader, so never more than it buffers) makes it a few.

``install()`` puts these into ``rstream.connection``, where rstream's connection looks
the names up at each call; relaydesk's stream clients call it before connecting
(``endpoint.py``). The result is the same frame objects and bytes
(``tests/foundation/test_rstream_frames.py`` compares them with rstream's codec).
"""

import struct
from typing import Any

import rstream.connection
from rstream import schema
from rstream.constants import Key
from rstream.encoding import decode_frame as generic_decode
from rstream.encoding import encode_frame as generic_encode

READ_SIZE = 65536

_HEAD = struct.Struct(">HH")  # key, version
# Deliver v1 after the head: subscription id, magic version, chunk type, entries, records,
# timestamp, epoch, first offset, CRC, data length, trailer length, reserved
_DELIVER = struct.Struct(">HHBbbHIqQQIIII")
_CONFIRM = struct.Struct(">HHBI")  # head, publisher id, count of the publishing ids after it
_CREDIT = struct.Struct(">IHHBH")  # frame size, key, version, subscription id, credit
_DELIVER_KEY = Key.Deliver.value
_CONFIRM_KEY = Key.PublishConfirm.value
_CREDIT_KEY = Key.Credit.value


def decode_frame(data: bytes, version_to_decode: int = 1) -> schema.Frame:
    """rstream's ``decode_frame``, with ``Deliver`` and ``PublishConfirm`` v1 in one call."""
    if version_to_decode == 1 and len(data) >= _CONFIRM.size:
        key, version = _HEAD.unpack_from(data)
        if version == 1 and key == _DELIVER_KEY and len(data) >= _DELIVER.size:
            (_, _, sid, magic, kind, entries, records, at, epoch, first, crc, size, trailer, _r) = (
                _DELIVER.unpack_from(data)
            )
            return schema.Deliver(
                subscription_id=sid,
                magic_version=magic,
                chunk_type=kind,
                num_entries=entries,
                num_records=records,
                timestamp=at,
                epoch=epoch,
                chunk_first_offset=first,
                chunk_crc=crc,
                data_length=size,
                trailer_length=trailer,
                _reserved=_r,
                data=bytes(data[_DELIVER.size :]),
            )
        if version == 1 and key == _CONFIRM_KEY:
            _, _, publisher_id, count = _CONFIRM.unpack_from(data)
            if len(data) == _CONFIRM.size + 8 * count:
                ids = list(struct.unpack_from(f">{count}Q", data, _CONFIRM.size))
                return schema.PublishConfirm(publisher_id=publisher_id, publishing_ids=ids)
    return generic_decode(data, version_to_decode)


def encode_frame(frame: Any, version_to_encode: int = 1) -> bytes:
    """rstream's ``encode_frame``, with a ``Credit`` frame packed in one call."""
    if type(frame) is schema.Credit and version_to_encode == 1:
        return _CREDIT.pack(_CREDIT.size - 4, _CREDIT_KEY, 1, frame.subscription_id, frame.credit)
    return generic_encode(frame, version_to_encode)


def install() -> None:
    rstream.connection.decode_frame = decode_frame
    rstream.connection.encode_frame = encode_frame
    rstream.connection.CHUNK_SIZE = READ_SIZE
