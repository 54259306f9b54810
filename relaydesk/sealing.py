"""Secrets that never sit in clear on the log: connector secrets sealed with Fernet, webhook
subscription secrets derived from the server's ``secrets_key``."""

import base64
import hashlib
import hmac
import json

from cryptography.fernet import Fernet


class SecretBox:
    """Encrypts a dict of secrets; the key is derived from ``settings.secrets_key``."""

    def __init__(self, secrets_key: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(secrets_key.encode()).digest())
        self._fernet = Fernet(key)

    def seal(self, secrets: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        return dict(json.loads(self._fernet.decrypt(sealed.encode())))


def subscription_secret(secrets_key: str, tenant: str, subscription_id: str) -> str:
    """A webhook subscription's signing secret: an HMAC of ``secrets_key``, so it never has to be
    written to the log; the gateway shows it to the subscriber once, the dispatcher signs with it.
    """
    return hmac.new(
        secrets_key.encode(), f"webhook:{tenant}:{subscription_id}".encode(), hashlib.sha256
    ).hexdigest()
