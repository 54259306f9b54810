"""The server's secrets: which service needs which, what makes one usable, key rings for rotation.

No secret has a built-in value (a default in the code is a default in every copy of the code:
anyone could sign tokens with it). A service started on its own checks its secrets before it
does anything (``relaydesk.runtime.run_service``) and the classes that use a secret ask for it
through :func:`key_ring`, which refuses a missing, short or published one, so a service built
in-process cannot run on a weak key either.

Rotation: each secret has a list of previous values. The current one signs and seals; the
previous ones only verify and open, until what they signed has expired or has been re-sealed
(docs/security.md).
"""

import hashlib
from dataclasses import dataclass
from typing import Literal

from relaydesk.settings import ENV_PREFIX, Settings

SecretName = Literal["jwt_secret", "visitor_secret", "secrets_key", "audit_signing_key"]

# The settings field holding each secret's previous values.
PREVIOUS: dict[SecretName, str] = {
    "jwt_secret": "jwt_previous_secrets",
    "visitor_secret": "visitor_previous_secrets",
    "secrets_key": "secrets_previous_keys",
    "audit_signing_key": "audit_signing_previous_keys",
}

# What each service started on its own (`relaydesk <service>`) signs, verifies, seals or opens.
SERVICE_SECRETS: dict[str, tuple[SecretName, ...]] = {
    # agent tokens, visitor tokens, attachment links; seals connector secrets, shows webhook
    # subscription secrets (derived from secrets_key)
    "gateway": ("jwt_secret", "visitor_secret", "secrets_key"),
    # the admin service signs outbound webhooks with secrets derived from secrets_key
    "agent": ("secrets_key",),
    # opens connector secrets, seals them again on reconfiguration
    "connectors": ("secrets_key",),
    # signs the archive's checkpoints (Ed25519 key derived from it, relaydesk/signing.py)
    "history": ("audit_signing_key",),
    "billing": (),
}

# At least 32 characters: 48 random url-safe characters carry 288 bits.
MIN_LENGTH = 32
GENERATE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"

# The development values earlier versions used as defaults: public, so never a key.
PUBLISHED = frozenset(
    {
        "change-me-in-production-relaydesk-dev-secret",
        "change-me-visitor-secret-relaydesk-dev",
        "change-me-connector-secrets-relaydesk-dev",
    }
)


class SecretNotUsable(Exception):
    """A secret is missing, too short or published; the message is one line naming it."""


def variable(field: str) -> str:
    """The environment variable of a settings field, e.g. ``RELAYDESK_JWT_SECRET``."""
    return ENV_PREFIX + field.upper()


def weakness(value: str) -> str | None:
    """Why ``value`` cannot be a key, or None."""
    if value in PUBLISHED:
        return "is a published development value"
    if len(value) < MIN_LENGTH:
        return f"is too short (at least {MIN_LENGTH} characters)"
    return None


def problems(settings: Settings, names: tuple[SecretName, ...]) -> list[str]:
    """Every reason the secrets ``names`` (and their previous values) cannot be used."""
    found: list[str] = []
    missing = [variable(name) for name in names if getattr(settings, name) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        found.append(f"{', '.join(missing)} {verb} not set")
    for name in names:
        current = getattr(settings, name)
        if current is not None and (why := weakness(current.get_secret_value())):
            found.append(f"{variable(name)} {why}")
        previous = [secret.get_secret_value() for secret in getattr(settings, PREVIOUS[name])]
        if any(weakness(value) for value in previous):
            found.append(f"{variable(PREVIOUS[name])} holds a short or published value")
    return found


def refusal(service: str, settings: Settings, names: tuple[SecretName, ...]) -> str | None:
    """The one line a service prints when it cannot start on these secrets, or None."""
    found = problems(settings, names)
    if not found:
        return None
    why = "; ".join(found)
    return f"relaydesk {service}: configuration: {why} (generate a secret with: {GENERATE})"


def key_id(key: str) -> str:
    """A short public name for a key (the ``kid`` of a token): a hash, never the key itself."""
    return hashlib.sha256(b"relaydesk-key-id\x00" + key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class KeyRing:
    """The current key (signs, seals) and the previous ones (verify, open)."""

    current: str
    previous: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return (self.current, *self.previous)

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def by_id(self, kid: str) -> str | None:
        return next((key for key in self.all if key_id(key) == kid), None)


def key_ring(settings: Settings, name: SecretName) -> KeyRing:
    """The usable key ring of ``name``; raises :class:`SecretNotUsable` naming the variable."""
    found = problems(settings, (name,))
    if found:
        raise SecretNotUsable(f"{'; '.join(found)} (generate a secret with: {GENERATE})")
    current: str = getattr(settings, name).get_secret_value()
    previous = tuple(secret.get_secret_value() for secret in getattr(settings, PREVIOUS[name]))
    return KeyRing(current, tuple(key for key in previous if key != current))
