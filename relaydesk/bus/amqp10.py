"""A log entry as RabbitMQ stores it: an AMQP 1.0 message.

relaydesk appends entries as a properties section (the event id) and a ``data`` section
(the envelope's JSON); a message a tool published over AMQP 0-9-1 through the exchange
lands as more sections (header, annotations, properties, application properties, data).
Readers need only the body, so instead of decoding every section into Python objects
(rstream's general decoder costs about 15 µs a message here) we walk the section
headers, which carry their own sizes, and slice the data section out.
"""

import struct

from rstream.amqp import amqp_decoder

DATA_SECTION = 0x75
APPLICATION_PROPERTIES_SECTION = 0x74
TRACEPARENT = "traceparent"
_DESCRIBED = 0x00
_SMALL_ULONG = 0x53
_U32 = struct.Struct(">I")


def encode_message(body: bytes, message_id: str, traceparent: str | None = None) -> bytes:
    """An AMQP 1.0 message: a properties section holding the message id, then ``body`` as data.

    The id lets an operator inspecting the stream see which event an entry is; nothing
    else is needed (the envelope carries the rest). With tracing on (relaydesk/tracing.py)
    an application-properties section carries the W3C ``traceparent`` between the two.
    """
    mid = message_id.encode()
    if len(mid) > 250:
        raise ValueError("message ids are at most 250 bytes")
    properties = b"\x00\x53\x73\xc0" + bytes((len(mid) + 3, 1, 0xA1, len(mid))) + mid
    if traceparent is not None:
        properties += _application_properties({TRACEPARENT: traceparent})
    size = len(body)
    data = (
        (b"\x00\x53\x75\xa0" + bytes((size,)))
        if size < 256
        else (b"\x00\x53\x75\xb0" + _U32.pack(size))
    )
    return properties + data + body


def _application_properties(values: dict[str, str]) -> bytes:
    """A map8 of str8 keys and values (short ASCII strings: a traceparent is 55 bytes)."""
    items = b"".join(
        bytes((0xA1, len(k))) + k + bytes((0xA1, len(v))) + v
        for k, v in ((k.encode(), v.encode()) for k, v in values.items())
    )
    if len(items) > 250:
        raise ValueError("application properties too long for a map8")
    return (
        bytes((_DESCRIBED, _SMALL_ULONG, APPLICATION_PROPERTIES_SECTION, 0xC1, len(items) + 1))
        + bytes((2 * len(values),))
        + items
    )


class NotAMessage(ValueError):
    """The bytes are not an AMQP 1.0 message with a data section."""


def message_body(raw: bytes) -> bytes:
    """The concatenated ``data`` sections of an AMQP 1.0 message."""
    return message_parts(raw)[0]


def message_parts(raw: bytes) -> tuple[bytes, str | None]:
    """The concatenated ``data`` sections of an AMQP 1.0 message, and the ``traceparent``
    application property when there is one.

    Falls back to the full decoder for encodings RabbitMQ does not produce for us
    (symbolic descriptors); raises :class:`NotAMessage` for anything else.
    """
    view = memoryview(raw)
    index, end, parts, traceparent = 0, len(raw), [], None
    try:
        while index < end:
            if view[index] != _DESCRIBED or view[index + 1] != _SMALL_ULONG:
                return _decoded_body(raw), None
            section = view[index + 2]
            index += 3
            size, header = _value_size(view, index)
            if section == DATA_SECTION:
                parts.append(bytes(view[index + header : index + header + size]))
            elif section == APPLICATION_PROPERTIES_SECTION:
                traceparent = _traceparent(view, index, header, size)
            index += header + size
    except IndexError:
        raise NotAMessage("truncated AMQP 1.0 message") from None
    if index != end or not parts:
        raise NotAMessage("no data section in the log entry")
    return (parts[0] if len(parts) == 1 else b"".join(parts)), traceparent


def _traceparent(view: memoryview, index: int, header: int, size: int) -> str | None:
    """The ``traceparent`` of an application-properties map, if it leads with it as we write
    it (str8 key, str8 value); maps written by other publishers are not traces of ours."""
    if view[index] != 0xC1:  # only the map8 we write
        return None
    at, stop = index + header + 1, index + header + size  # after the element count
    if at + 2 > stop or view[at] != 0xA1:
        return None
    key_end = at + 2 + view[at + 1]
    if bytes(view[at + 2 : key_end]) != TRACEPARENT.encode() or view[key_end] != 0xA1:
        return None
    value_end = key_end + 2 + view[key_end + 1]
    return bytes(view[key_end + 2 : value_end]).decode("ascii", "replace")


def _value_size(view: memoryview, index: int) -> tuple[int, int]:
    """(payload size, header size) of the encoded value at ``index``; header has the type code."""
    code = view[index]
    if code in (0xA0, 0xA1, 0xA3, 0xC0, 0xC1):  # vbin8, str8, sym8, list8, map8: one size byte
        return view[index + 1], 2
    if code in (0xB0, 0xB1, 0xB3, 0xD0, 0xD1):  # the 32-bit forms: four size bytes
        return _U32.unpack_from(view, index + 1)[0], 5
    if code in (0x40, 0x45):  # null, list0
        return 0, 1
    raise NotAMessage(f"unexpected AMQP 1.0 type 0x{code:02x} at a section")


def _decoded_body(raw: bytes) -> bytes:
    try:
        body = amqp_decoder(raw).body
    except Exception as exc:  # noqa: BLE001 - the decoder raises many kinds, all "not a message"
        raise NotAMessage(f"undecodable AMQP 1.0 message: {type(exc).__name__}") from None
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, list) and all(isinstance(part, (bytes, bytearray)) for part in body):
        return b"".join(body)
    raise NotAMessage("log entry body is not binary data")
