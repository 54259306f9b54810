"""Files to and from the platforms: what a client sends, what it fetches, and their limits.

Outbound, an agent's attachment (stored in GridFS by the gateway) is read here and handed
to the platform's media call; a file the platform would refuse (too large, a type it cannot
send) is refused before any upload, with a reason the console shows. Inbound, a platform
file is downloaded once, stored as an attachment of the conversation and published as
``message.attachment_sent``.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import structlog

from connectors.delivery import DeliveryError
from relaydesk.attachments import AttachmentRejected, check_content
from relaydesk.net_guard import RefusedTarget

log = structlog.get_logger(__name__)

MB = 1024 * 1024
MAX_INBOUND_BYTES = 20 * MB  # Telegram's getFile limit; larger platform files are not fetched
OCTET_STREAM = "application/octet-stream"
MAX_REDIRECTS = 5  # a CDN redirects once or twice; more is a loop or a detour


@dataclass(frozen=True)
class OutboundFile:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class InboundMedia:
    """A file a platform user sent, as the platform names it (fetched later, once).

    ``ref``: Telegram ``file_id``, Messenger attachment URL, WeChat ``MediaId``;
    ``kind``: what the platform calls it (photo, document, voice, video, sticker, image…).
    """

    ref: str
    kind: str
    filename: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class FetchedFile:
    filename: str
    content_type: str
    content: bytes


def too_large(platform: str, what: str, size: int, limit: int) -> DeliveryError:
    return DeliveryError(
        f"too large for {platform}: {what} up to {limit // MB} MB, this file is {size / MB:.1f} MB",
        permanent=True,
        unsendable=True,
    )


def unsupported(platform: str, content_type: str, supported: str) -> DeliveryError:
    return DeliveryError(
        f"{platform} cannot send {content_type} files to its users (it sends {supported})",
        permanent=True,
        unsendable=True,
    )


def checked_type(declared: str | None, content: bytes) -> str:
    """The declared type when the bytes agree with it, else ``application/octet-stream``: a
    platform file is served back to agents, and a page passed off as an image must not be."""
    if not declared:
        return OCTET_STREAM
    declared = declared.split(";")[0].strip().lower()
    try:
        check_content(declared, content[:64], [declared])
    except AttachmentRejected:
        return OCTET_STREAM
    return declared


async def download(
    http: httpx.AsyncClient, url: str, *, params: dict[str, str] | None = None
) -> tuple[bytes, httpx.Headers]:
    """GET a file, following up to MAX_REDIRECTS redirects, refusing it while reading once it
    passes MAX_INBOUND_BYTES.

    Each hop is a request of its own through ``http``'s transport, so the SSRF guard checks
    every address a redirect names, as it checked the first (relaydesk/net_guard.py): a
    platform's CDN redirects, and a redirect is as much the payload's choice as the URL.

    Raises DeliveryError: transient for network errors and 5xx (the platform resends the
    update), permanent for 4xx, a file too large, a redirect without a target or one too
    many, or an address the SSRF guard refuses.
    """
    try:
        for _ in range(MAX_REDIRECTS + 1):
            async with http.stream("GET", url, params=params, timeout=30.0) as response:
                if not response.is_redirect:
                    return await _read_file(response)
                url, params = _redirect_target(response), None  # the Location is the whole URL
        raise DeliveryError(f"too many redirects (more than {MAX_REDIRECTS})", permanent=True)
    except RefusedTarget as exc:
        raise DeliveryError(f"refused address: {exc}", permanent=True) from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"network: {type(exc).__name__}", permanent=False) from None


def _redirect_target(response: httpx.Response) -> str:
    location = response.headers.get("location")
    if not location:
        raise DeliveryError(
            f"download http {response.status_code} without a Location", permanent=True
        )
    return str(response.url.join(location))  # a relative Location is relative to this hop


async def _read_file(response: httpx.Response) -> tuple[bytes, httpx.Headers]:
    """The body of a final answer (never a 3xx: that is no file)."""
    if response.status_code >= 300:
        raise DeliveryError(
            f"download http {response.status_code}", permanent=response.status_code < 500
        )
    refused = f"file larger than {MAX_INBOUND_BYTES // MB} MB"
    if int(response.headers.get("content-length") or 0) > MAX_INBOUND_BYTES:
        raise DeliveryError(refused, permanent=True)
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_INBOUND_BYTES:
            raise DeliveryError(refused, permanent=True)
        chunks.append(chunk)
    return b"".join(chunks), response.headers


async def profile_picture(
    fetch: Callable[[], Awaitable[tuple[bytes, httpx.Headers]]],
) -> FetchedFile | None:
    """A user's profile picture, or None when it cannot be fetched (gone, refused by the
    guard, a redirect loop): a picture is a courtesy, and failing, it took the user's name
    down with it (the whole profile was dropped)."""
    try:
        content, headers = await fetch()
    except DeliveryError as exc:
        log.info("connector_profile_picture_unavailable", reason=exc.reason)
        return None
    return FetchedFile("avatar", checked_type(headers.get("content-type"), content), content)
