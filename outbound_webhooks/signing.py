"""Webhook secrets and signatures.

A subscription's secret is derived (HMAC of the server's ``secrets_key``), so it never
has to be written to the log, and the gateway can show it to the subscriber once.
"""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Relaydesk-Signature"


def subscription_secret(secrets_key: str, tenant: str, subscription_id: str) -> str:
    return hmac.new(
        secrets_key.encode(), f"webhook:{tenant}:{subscription_id}".encode(), hashlib.sha256
    ).hexdigest()


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does: constant-time comparison of the header with its own HMAC."""
    return hmac.compare_digest(sign(secret, body), signature)
