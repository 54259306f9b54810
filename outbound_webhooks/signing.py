"""Webhook signatures (the secret each subscription signs with: ``relaydesk.sealing``)."""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Relaydesk-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does: constant-time comparison of the header with its own HMAC."""
    return hmac.compare_digest(sign(secret, body), signature)
