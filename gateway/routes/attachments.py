"""Attachments: upload into a conversation, get a signed link, download by link.

Upload needs an ``Idempotency-Key`` header (like a websocket command's ``id``): the
attachment id, message id and event id all derive from it, so a retried upload is the
same message. Limits (size, types) are the tenant's settings.

The upload's body is read last: the caller is authenticated, the conversation found
writable and the tenant's size limit applied (a larger declared length refused at once,
a chunked body counted as it arrives — ``gateway/body_limits.py``) before one byte of the
file is read or spooled. The route therefore takes the form from the request itself
rather than as a FastAPI ``File`` parameter, which FastAPI would read before any check.
"""

import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from contracts import derive_event_id
from contracts.queries.admin import TenantSettingsQuery
from contracts.settings import DEFAULTS
from gateway.attachments import LinkSigner
from gateway.auth.http import ApiError, require_principal
from gateway.auth.tokens import Principal
from gateway.body_limits import MULTIPART_OVERHEAD, lower_body_limit
from gateway.deps import GatewayDeps
from gateway.ops import MAX_KEY_LENGTH, OpError
from gateway.routes.conversations import readable_conversation
from relaydesk.attachments import (
    AttachmentRejected,
    AttachmentStore,
    StoredAttachment,
    check_content,
)
from relaydesk.bus import RemoteError, RequestTimeout
from relaydesk.keys import key_ring

READ_CHUNK = 256 * 1024
# The form as the OpenAPI document shows it (the route reads it itself, see above).
UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def safe_filename(name: str | None) -> str:
    """The last path component, printable, at most 200 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>').strip()
    return (cleaned or "file")[:200]


async def tenant_limits(deps: GatewayDeps, tenant: str) -> tuple[int, list[str]]:
    try:
        settings = await deps.rpc.ask(
            TenantSettingsQuery(tenant=tenant), timeout=deps.settings.request_timeout_s
        )
    except RemoteError as exc:
        if exc.code != "not_found":
            raise ApiError(503, "unavailable", "tenant settings are unavailable") from None
        settings = DEFAULTS  # a tenant with no settings record uses the defaults
    except RequestTimeout:
        raise ApiError(503, "unavailable", "tenant settings did not answer") from None
    return settings.attachment_max_bytes, list(settings.attachment_types)


async def read_limited(upload: UploadFile, max_bytes: int) -> bytes:
    chunks, total = [], 0
    while chunk := await upload.read(READ_CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise ApiError(413, "too_large", f"files may be at most {max_bytes} bytes")
        chunks.append(chunk)
    if total == 0:
        raise ApiError(400, "invalid_payload", "the file is empty")
    return b"".join(chunks)


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["attachments"])
    keys = key_ring(deps.settings, "jwt_secret")
    signer = LinkSigner(keys.current.encode(), previous=[key.encode() for key in keys.previous])

    def store() -> AttachmentStore:
        if deps.db is None:
            raise ApiError(503, "unavailable", "attachments need MongoDB (set MONGO_URL)")
        return AttachmentStore(deps.db)

    @router.post(
        "/conversations/{conversation_id}/attachments", status_code=201, openapi_extra=UPLOAD_FORM
    )
    async def upload(
        conversation_id: str,
        request: Request,
        idempotency_key: str = Header(
            ..., alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH
        ),
        principal: Principal = Depends(require_principal()),
    ) -> dict[str, Any]:
        try:
            info = await deps.operations.writable(principal, conversation_id)
        except OpError as exc:
            status = {"not_found": 404, "unavailable": 503, "conversation_closed": 409}.get(
                exc.code, 403
            )
            raise ApiError(status, exc.code, exc.message) from None
        max_bytes, allowed_types = await tenant_limits(deps, principal.tenant)
        too_large = f"files may be at most {max_bytes} bytes"
        lower_body_limit(request, max_bytes + MULTIPART_OVERHEAD, too_large)
        async with request.form(max_files=1, max_fields=4) as form:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise ApiError(400, "invalid_payload", "a multipart field 'file' is required")
            content = await read_limited(file, max_bytes)
        content_type = (file.content_type or "").split(";")[0].strip().lower()
        try:
            check_content(content_type, content[:64], allowed_types)
        except AttachmentRejected as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        attachment_id = (
            "a"
            + derive_event_id(
                principal.tenant, principal.actor_id, "attachment:" + idempotency_key
            )[1:]
        )
        stored = StoredAttachment(
            attachment_id,
            principal.tenant,
            info.conversation_id,
            safe_filename(file.filename),
            content_type,
            len(content),
        )
        await store().save(stored, content)
        try:
            published = await deps.operations.publish_attachment(
                principal,
                "attachment:" + idempotency_key,
                info,
                {
                    "attachment_id": attachment_id,
                    "filename": stored.filename,
                    "content_type": content_type,
                    "size": stored.size,
                },
            )
        except OpError as exc:
            raise ApiError(503, exc.code, exc.message) from None
        return {**published, "attachment_id": attachment_id, **signer.link(attachment_id)}

    @router.get("/conversations/{conversation_id}/attachments/{attachment_id}")
    async def link(
        conversation_id: str,
        attachment_id: str,
        principal: Principal = Depends(require_principal()),
    ) -> dict[str, Any]:
        await readable_conversation(deps, principal, conversation_id)
        found = await store().find(attachment_id)
        if (
            found is None
            or found.tenant != principal.tenant
            or found.conversation_id != conversation_id
        ):
            raise ApiError(404, "not_found", "no such attachment in this conversation")
        return {
            "attachment_id": attachment_id,
            "filename": found.filename,
            "content_type": found.content_type,
            "size": found.size,
            **signer.link(attachment_id),
        }

    @router.get("/attachments/{attachment_id}")
    async def download(
        attachment_id: str, exp: int = Query(...), sig: str = Query(..., max_length=100)
    ) -> Response:
        try:
            signer.verify(attachment_id, exp, sig)
            found = await store().find(attachment_id)
            if found is None:
                raise AttachmentRejected(404, "not_found", "no such attachment")
            content = await store().read(attachment_id)
        except AttachmentRejected as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        disposition = "inline" if found.content_type in INLINE_TYPES else "attachment"
        return Response(
            content,
            media_type=found.content_type,
            headers={
                # RFC 6266/5987: the UTF-8 name percent-encoded; headers themselves stay ASCII
                "Content-Disposition": (
                    f"{disposition}; filename*=UTF-8''{quote(found.filename, safe='')}"
                ),
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox",
                "Cache-Control": "private, max-age=300",
            },
        )

    return router
