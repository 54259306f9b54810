"""Seal connector secrets with Fernet so they never sit in clear on the log."""

import base64
import hashlib
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
