"""The fast frame codec (relaydesk/bus/rstream_frames.py) gives what rstream's own gives."""

import zlib

import pytest
from rstream import schema
from rstream.encoding import decode_frame as rstream_decode
from rstream.encoding import encode_frame as rstream_encode

from relaydesk.bus.rstream_frames import decode_frame, encode_frame


def wire(frame: schema.Frame) -> bytes:
    """A frame as the connection hands it to the decoder: without its 4-byte size."""
    return rstream_encode(frame)[4:]


def deliver(entries: list[bytes], crc: int | None = None) -> schema.Deliver:
    data = b"".join(len(entry).to_bytes(4, "big") + entry for entry in entries)
    return schema.Deliver(
        subscription_id=3,
        magic_version=0x50,
        chunk_type=0,
        num_entries=len(entries),
        num_records=len(entries),
        timestamp=1_764_000_000_123,
        epoch=7,
        chunk_first_offset=2**40 + 5,
        chunk_crc=zlib.crc32(data) if crc is None else crc,
        data_length=len(data),
        trailer_length=0,
        _reserved=0,
        data=data,
    )


@pytest.mark.parametrize(
    "frame",
    [
        deliver([b"x" * 600]),
        deliver([b"a", b"bb" * 3000, b""]),
        schema.PublishConfirm(publisher_id=1, publishing_ids=[]),
        schema.PublishConfirm(publisher_id=255, publishing_ids=[1, 2**63, 42]),
        schema.Heartbeat(),  # not a fast one: rstream's codec, unchanged
        schema.MetadataUpdate(metadata_info=schema.MetadataInfo(code=6, stream="relaydesk.log")),
    ],
    ids=["deliver", "deliver-3", "confirm-0", "confirm-3", "heartbeat", "metadata-update"],
)
def test_decoding_gives_the_frame_rstream_gives(frame: schema.Frame) -> None:
    assert decode_frame(wire(frame)) == rstream_decode(wire(frame)) == frame


def test_a_deliver_frame_with_a_wrong_checksum_is_refused_as_rstream_refuses_it() -> None:
    bad = bytearray(wire(deliver([b"x" * 10])))
    bad[-1] ^= 0xFF  # the entry's last byte: the CRC no longer matches
    with pytest.raises(ValueError, match="checksum"):
        decode_frame(bytes(bad))
    with pytest.raises(ValueError):
        rstream_decode(bytes(bad))


@pytest.mark.parametrize("credit", [0, 1, 8, 65535])
def test_a_credit_frame_is_the_bytes_rstream_writes(credit: int) -> None:
    frame = schema.Credit(subscription_id=9, credit=credit)
    assert encode_frame(frame) == rstream_encode(frame)


def test_other_frames_are_encoded_by_rstream() -> None:
    frame = schema.StoreOffset(stream="relaydesk.log", reference="r", offset=12)
    assert encode_frame(frame) == rstream_encode(frame)
