"""WeChat signatures and safe-mode AES (AES-256-CBC, IV = key[:16], PKCS#7 to 32 bytes)."""

import base64
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from connectors.secret_compare import matches

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16


class WeChatCryptoError(ValueError):
    pass


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_ok(given: str | None, *parts: str) -> bool:
    return matches(signature(*parts), given)


class WeChatCipher:
    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        self._key = base64.b64decode(encoding_aes_key + "=")
        if len(self._key) != 32:
            raise WeChatCryptoError("EncodingAESKey must decode to 32 bytes")
        self._app_id = app_id.encode()

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str) -> str:
        body = message.encode()
        plain = os.urandom(16) + struct.pack(">I", len(body)) + body + self._app_id
        pad = BLOCK - len(plain) % BLOCK
        encryptor = self._cipher().encryptor()
        return base64.b64encode(
            encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
        ).decode()

    def decrypt(self, encrypted: str) -> str:
        try:
            decryptor = self._cipher().decryptor()
            padded = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
        except ValueError as exc:
            raise WeChatCryptoError("undecryptable") from exc
        pad = padded[-1] if padded else 0
        if not 1 <= pad <= BLOCK:
            raise WeChatCryptoError("bad padding")
        plain = padded[:-pad]
        if len(plain) < 20:  # shorter than random(16) + length(4): struct.unpack would raise
            raise WeChatCryptoError("truncated")
        (length,) = struct.unpack(">I", plain[16:20])
        message, app_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(app_id, self._app_id):
            raise WeChatCryptoError("message for another AppId")
        try:
            return message.decode()
        except UnicodeDecodeError as exc:
            raise WeChatCryptoError("not UTF-8") from exc
