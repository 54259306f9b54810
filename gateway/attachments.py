"""Short-lived signed links to attachment files (storage: ``relaydesk/attachments.py``)."""

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

from relaydesk.attachments import AttachmentRejected

LINK_TTL_S = 300


class LinkSigner:
    """HMAC-signed, expiring download links: possession of a link is the permission."""

    def __init__(
        self, secret: bytes, ttl_s: int = LINK_TTL_S, previous: Sequence[bytes] = ()
    ) -> None:
        # a key of its own, derived from the gateway secret, so a link signature can never
        # be replayed as any other kind of token; links signed with a previous gateway secret
        # (key rotation) stay valid until they expire
        self._keys = [
            hashlib.sha256(b"relaydesk-attachment-links\x00" + key).digest()
            for key in (secret, *previous)
        ]
        self._ttl_s = ttl_s

    def _signature(self, attachment_id: str, expires: int, key: bytes | None = None) -> str:
        message = f"{attachment_id}\x00{expires}".encode()
        mac = hmac.new(key or self._keys[0], message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def link(self, attachment_id: str, now: float | None = None) -> dict[str, Any]:
        expires = int((now if now is not None else time.time()) + self._ttl_s)
        signature = self._signature(attachment_id, expires)
        return {
            "url": f"/api/attachments/{attachment_id}?exp={expires}&sig={signature}",
            "expires_at": expires,
        }

    def verify(
        self, attachment_id: str, expires: int, signature: str, now: float | None = None
    ) -> None:
        # compare_digest refuses non-ASCII str: compare bytes, so a hostile sig is just wrong.
        given = signature.encode("utf-8", "surrogatepass")
        if not any(
            hmac.compare_digest(self._signature(attachment_id, expires, key).encode(), given)
            for key in self._keys
        ):
            raise AttachmentRejected(403, "forbidden", "invalid link signature")
        if expires < (now if now is not None else time.time()):
            raise AttachmentRejected(
                403, "link_expired", "this link has expired; ask for a new one"
            )
