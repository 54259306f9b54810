"""The export file: JSON Lines that an auditor can verify and another system can import.

    {"relaydesk_export": 2, "tenant": "acme", "conversation": null}          # header
    {"position": 17, "prev_hash": "…", "hash": "…", "event": {envelope}}    # archived events
    {"attachment": {"id": "…", "filename": "…", "content_type": "…",
                    "conversation_id": "…", "size": 5, "sha256": "…", "content": "base64"}}

Events keep their archive position and hash links (and a retention redaction's
``redacted``), so ``relaydesk audit verify --file`` recomputes every chain and checks it
against the signed ``audit.checkpoint`` events the file carries (a conversation's export
carries its tenant's checkpoints too). Files of the first format (one bare envelope per
line, no header) are still imported; they cannot be verified.
"""

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from contracts.envelope import Envelope
from contracts.errors import ContractError
from contracts.registry import EVENTS
from relaydesk.archived import ENVELOPE_FIELDS, envelope_of

FORMAT = 2
LINK_FIELDS = ("position", "prev_hash", "hash", "redacted")


@dataclass(frozen=True)
class Attachment:
    id: str
    filename: str
    content_type: str
    conversation_id: str
    tenant: str
    content: bytes


@dataclass
class ExportFile:
    tenant: str | None = None
    conversation: str | None = None
    verifiable: bool = False  # the second format: positions and hash links
    records: list[dict[str, Any]] = field(default_factory=list)  # archive documents
    envelopes: list[Envelope] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def write_header(out: TextIO, tenant: str, conversation: str | None) -> None:
    out.write(_line({"relaydesk_export": FORMAT, "tenant": tenant, "conversation": conversation}))


def write_event(out: TextIO, document: dict[str, Any]) -> None:
    """One archived event (the archive's document) with its position and links."""
    links = {name: document[name] for name in LINK_FIELDS if document.get(name) is not None}
    out.write(_line({**links, "event": envelope_of(document)}))


def write_attachment(out: TextIO, attachment: Attachment) -> None:
    out.write(
        _line(
            {
                "attachment": {
                    "id": attachment.id,
                    "filename": attachment.filename,
                    "content_type": attachment.content_type,
                    "conversation_id": attachment.conversation_id,
                    "tenant": attachment.tenant,
                    "size": len(attachment.content),
                    "sha256": hashlib.sha256(attachment.content).hexdigest(),
                    "content": base64.b64encode(attachment.content).decode(),
                }
            }
        )
    )


def read_export(path: Path) -> ExportFile:
    """Every line validated; raises ValueError naming the first bad line (nothing is half-read)."""
    result = ExportFile()
    for number, line in _lines(path):
        try:
            _read_line(result, json.loads(line), number)
        except (ValueError, ContractError, KeyError, TypeError) as exc:
            raise ValueError(f"line {number}: {str(exc).splitlines()[0]}") from None
    return result


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            yield number, line


def _read_line(result: ExportFile, value: Any, number: int) -> None:
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    if "relaydesk_export" in value:
        if number != 1 or value["relaydesk_export"] != FORMAT:
            raise ValueError(f"a header of format {FORMAT} belongs on the first line")
        result.tenant, result.conversation = value.get("tenant"), value.get("conversation")
        result.verifiable = True
    elif "attachment" in value:
        result.attachments.append(_attachment(value["attachment"]))
    elif result.verifiable:
        envelope = _envelope(value["event"])
        result.envelopes.append(envelope)
        result.records.append(
            {
                "_id": envelope.id,
                **{name: value["event"].get(name) for name in ENVELOPE_FIELDS},
                **{name: value.get(name) for name in LINK_FIELDS},
                "position": int(value["position"]),
            }
        )
    else:
        result.envelopes.append(_envelope(value))


def _envelope(value: dict[str, Any]) -> Envelope:
    envelope = Envelope.model_validate(value)
    EVENTS.parse_envelope(envelope)
    return envelope


def _attachment(value: dict[str, Any]) -> Attachment:
    content = base64.b64decode(value["content"], validate=True)
    digest = hashlib.sha256(content).hexdigest()
    if digest != value["sha256"] or len(content) != value["size"]:
        raise ValueError(
            f"attachment {value['id']}: its content does not match its sha256 and size"
        )
    return Attachment(
        id=str(value["id"]),
        filename=str(value["filename"]),
        content_type=str(value["content_type"]),
        conversation_id=str(value["conversation_id"]),
        tenant=str(value["tenant"]),
        content=content,
    )
