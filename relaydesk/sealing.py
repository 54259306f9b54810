"""Secrets that never sit in clear on the log: connector secrets sealed with Fernet, webhook
subscription secrets derived from the server's ``secrets_key``."""

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from relaydesk.keys import key_ring
from relaydesk.settings import Settings


def _fernet(secrets_key: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secrets_key.encode()).digest()))


class SecretBox:
    """Encrypts a dict of secrets; the key is derived from ``settings.secrets_key``.

    ``previous`` keys (``RELAYDESK_SECRETS_PREVIOUS_KEYS``) still open what they sealed, and
    never seal: after a rotation, ``relaydesk admin reseal-connectors`` seals every connector's
    secrets again under the current key, then the previous one can go.
    """

    def __init__(self, secrets_key: str, previous: Sequence[str] = ()) -> None:
        self._current = _fernet(secrets_key)
        self._fernet = MultiFernet([self._current, *(_fernet(key) for key in previous)])

    @classmethod
    def from_settings(cls, settings: Settings) -> "SecretBox":
        """Refuses a missing, short or published key (``relaydesk.keys.SecretNotUsable``)."""
        keys = key_ring(settings, "secrets_key")
        return cls(keys.current, keys.previous)

    def seal(self, secrets: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        """Raises ``cryptography.fernet.InvalidToken`` when no configured key sealed it."""
        return dict(json.loads(self._fernet.decrypt(sealed.encode())))

    def sealed_under_current_key(self, sealed: str) -> bool:
        """False for what only a previous key (or none) opens: it needs re-sealing."""
        try:
            self._current.decrypt(sealed.encode())
        except InvalidToken:
            return False
        return True


def subscription_secret(secrets_key: str, tenant: str, subscription_id: str) -> str:
    """A webhook subscription's signing secret: an HMAC of ``secrets_key``, so it never has to be
    written to the log; the gateway shows it to the subscriber once, the dispatcher signs with it.
    Derived from the current key: rotating ``secrets_key`` changes every subscription's secret.
    """
    return hmac.new(
        secrets_key.encode(), f"webhook:{tenant}:{subscription_id}".encode(), hashlib.sha256
    ).hexdigest()
