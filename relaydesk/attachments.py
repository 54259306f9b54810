"""Attachment files: GridFS storage and content checks, shared by the gateway (uploads) and
the connectors (files from and to Telegram, Messenger and WeChat).

The file is stored before its ``message.attachment_sent`` event is published, so an
event never points at a missing file; a retry with the same idempotency key finds the
file already stored (its GridFS id is derived from the key) and republishes the same
event id, so an upload is never half-applied nor duplicated.
"""

from dataclasses import dataclass

from beanie import Document
from gridfs import AsyncGridFSBucket
from gridfs.errors import FileExists, NoFile
from pydantic import BaseModel, ConfigDict
from pymongo.asynchronous.database import AsyncDatabase

from relaydesk.store import Row, bound

BUCKET = "attachments"

# Magic numbers of the binary types we accept: a declared type must match its bytes,
# so an HTML page cannot be uploaded as "image/png" and served back to a browser.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "application/pdf": (b"%PDF-",),
}


class AttachmentRejected(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_content(content_type: str, head: bytes, allowed_types: list[str]) -> None:
    """Raise :class:`AttachmentRejected` unless the type is allowed and the bytes agree."""
    if content_type not in allowed_types:
        raise AttachmentRejected(
            415,
            "unsupported_type",
            f"{content_type or 'unknown type'} is not allowed here;"
            f" allowed: {', '.join(allowed_types)}",
        )
    if content_type == "image/webp":
        matches = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    elif content_type in SIGNATURES:
        matches = head.startswith(SIGNATURES[content_type])
    elif content_type.startswith("text/"):
        try:
            head.decode("utf-8")
            matches = True
        except UnicodeDecodeError as exc:  # a cut multi-byte character at the end is fine
            matches = exc.start >= len(head) - 3
    else:
        matches = True
    if not matches:
        raise AttachmentRejected(415, "type_mismatch", f"the file's content is not {content_type}")


@dataclass(frozen=True)
class StoredAttachment:
    attachment_id: str
    tenant: str
    conversation_id: str
    filename: str
    content_type: str
    size: int


class AttachmentMetadata(BaseModel):
    tenant: str = ""
    conversation_id: str = ""
    content_type: str = "application/octet-stream"


class AttachmentFile(Document):
    """A stored file's GridFS entry (collection ``attachments.files``), read for its
    metadata; GridFS writes it (``upload_from_stream_with_id``), never this model."""

    model_config = ConfigDict(extra="allow")  # GridFS's own fields (chunkSize, uploadDate…)

    id: str  # type: ignore[assignment]  # derived from the upload's idempotency key
    filename: str = "file"
    length: int = 0
    metadata: AttachmentMetadata = AttachmentMetadata()

    class Settings:
        name = f"{BUCKET}.files"


class AttachmentStore:
    def __init__(self, db: AsyncDatabase[Row]) -> None:
        self._db = db
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)

    async def save(self, attachment: StoredAttachment, content: bytes) -> None:
        metadata = {
            "tenant": attachment.tenant,
            "conversation_id": attachment.conversation_id,
            "content_type": attachment.content_type,
        }
        try:
            await self._bucket.upload_from_stream_with_id(
                attachment.attachment_id, attachment.filename, content, metadata=metadata
            )
        except FileExists:
            pass  # the same key uploaded before: the first copy stands
        except Exception as exc:
            if "duplicate key" not in str(exc).lower():
                raise

    async def find(self, attachment_id: str) -> StoredAttachment | None:
        doc = await (await bound(self._db, AttachmentFile)).get(attachment_id)
        if doc is None:
            return None
        return StoredAttachment(
            attachment_id,
            doc.metadata.tenant,
            doc.metadata.conversation_id,
            doc.filename,
            doc.metadata.content_type,
            doc.length,
        )

    async def read(self, attachment_id: str) -> bytes:
        try:
            stream = await self._bucket.open_download_stream(attachment_id)
        except NoFile:
            raise AttachmentRejected(404, "not_found", "no such attachment") from None
        return await stream.read()
