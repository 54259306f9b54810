"""Tokens: agent access/refresh JWTs and widget visitor tokens (PyJWT, HS256 pinned).

RFC 8725 rules applied: the verifier picks the algorithm (never the token), one
algorithm per kind, separate keys for agents and visitors, a ``typ`` claim so an access
token never validates as a refresh or visitor token, required exp/iat/sub/aud/iss.

Key rotation: every token names its key in the header (``kid``, a hash of the key). The
current key signs; a previous key (``RELAYDESK_JWT_PREVIOUS_SECRETS``,
``RELAYDESK_VISITOR_PREVIOUS_SECRETS``) still verifies the tokens it signed while it is
configured. A token without ``kid`` (issued before key ids) is tried against each key.
"""

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt

from relaydesk.keys import KeyRing, key_ring
from relaydesk.settings import Settings

ALGORITHM = "HS256"
ISSUER = "relaydesk"
AUDIENCES = {
    "access": "relaydesk:agent",
    "refresh": "relaydesk:refresh",
    "visitor": "relaydesk:visitor",
}
VISITOR_TTL_S = 180 * 24 * 3600  # a returning visitor keeps their conversation for months
LEEWAY_S = 5

TokenKind = Literal["access", "refresh", "visitor"]


class InvalidToken(Exception):
    """The token is missing, forged, expired or of the wrong kind; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)  # one per open websocket: no __dict__
class AgentPrincipal:
    tenant: str
    agent_id: str
    role: str
    permissions: frozenset[str]
    name: str = ""
    groups: tuple[str, ...] = ()
    token_version: int = 0
    expires_at: float = 0.0
    issued_at: float = 0.0
    kind: str = field(default="agent", init=False)

    @property
    def actor_id(self) -> str:
        return self.agent_id

    def can(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True, slots=True)
class VisitorPrincipal:
    tenant: str
    visitor_id: str
    expires_at: float = 0.0
    kind: str = field(default="customer", init=False)

    @property
    def actor_id(self) -> str:
        return self.visitor_id

    def can(self, permission: str) -> bool:
        return False


Principal = AgentPrincipal | VisitorPrincipal


class TokenService:
    """Issues and verifies every token kind. Keys come from settings, injected once."""

    def __init__(self, settings: Settings) -> None:
        # key_ring refuses a missing, short or published secret: no token on a guessable key
        self._agent_keys = key_ring(settings, "jwt_secret")
        self._visitor_keys = key_ring(settings, "visitor_secret")
        self._ttl = {
            "access": settings.access_token_ttl_s,
            "refresh": settings.refresh_token_ttl_s,
            "visitor": VISITOR_TTL_S,
        }

    def _keys(self, kind: TokenKind) -> KeyRing:
        return self._visitor_keys if kind == "visitor" else self._agent_keys

    def _verification_keys(self, token: str, kind: TokenKind) -> tuple[str, ...]:
        """The key the token names, or every key for a token without a key id."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise InvalidToken("invalid token") from None
        keys = self._keys(kind)
        if kid is None:
            return keys.all
        key = keys.by_id(kid) if isinstance(kid, str) else None
        if key is None:  # signed with a key this server does not hold (any more)
            raise InvalidToken("invalid token")
        return (key,)

    @property
    def refresh_ttl_s(self) -> int:
        return self._ttl["refresh"]

    def _issue(
        self, kind: TokenKind, subject: str, claims: dict[str, Any], jti: str | None = None
    ) -> str:
        now = int(time.time())
        payload = {
            **claims,
            "sub": subject,
            "typ": kind,
            "iss": ISSUER,
            "aud": AUDIENCES[kind],
            "iat": now,
            "exp": now + self._ttl[kind],
            "jti": jti or uuid.uuid4().hex,
        }
        keys = self._keys(kind)
        return jwt.encode(
            payload,
            keys.current,
            algorithm=ALGORITHM,
            headers={"typ": "JWT", "kid": keys.current_id},
        )

    def issue_access(self, agent: AgentPrincipal) -> str:
        return self._issue(
            "access",
            agent.agent_id,
            {
                "tenant": agent.tenant,
                "role": agent.role,
                "perms": sorted(agent.permissions),
                "groups": list(agent.groups),
                "name": agent.name,
                "ver": agent.token_version,
            },
        )

    def issue_refresh(self, agent: AgentPrincipal, family: str, jti: str) -> str:
        """A refresh token of ``family`` (gateway/auth/refresh_families.py), id ``jti``."""
        return self._issue(
            "refresh",
            agent.agent_id,
            {"tenant": agent.tenant, "ver": agent.token_version, "fam": family},
            jti=jti,
        )

    def issue_visitor(self, tenant: str, visitor_id: str) -> str:
        return self._issue("visitor", visitor_id, {"tenant": tenant})

    def decode(self, token: str, kind: TokenKind) -> dict[str, Any]:
        if not token or len(token) > 4096:
            raise InvalidToken("missing or oversized token")
        claims: dict[str, Any] | None = None
        for key in self._verification_keys(token, kind):
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[ALGORITHM],
                    audience=AUDIENCES[kind],
                    issuer=ISSUER,
                    leeway=LEEWAY_S,
                    options={"require": ["exp", "iat", "sub", "aud", "iss", "typ"]},
                )
                break
            except jwt.InvalidSignatureError:
                continue  # a token without kid: try the next key
            except jwt.ExpiredSignatureError:
                raise InvalidToken("token expired") from None
            except jwt.PyJWTError:
                raise InvalidToken("invalid token") from None
        if claims is None:
            raise InvalidToken("invalid token")
        if claims.get("typ") != kind or not isinstance(claims.get("tenant"), str):
            raise InvalidToken("wrong token kind")
        return claims

    def verify_access(self, token: str) -> AgentPrincipal:
        claims = self.decode(token, "access")
        return AgentPrincipal(
            tenant=claims["tenant"],
            agent_id=claims["sub"],
            role=str(claims.get("role", "agent")),
            permissions=frozenset(claims.get("perms", [])),
            name=str(claims.get("name", "")),
            groups=tuple(claims.get("groups", [])),
            token_version=int(claims.get("ver", 0)),
            expires_at=float(claims["exp"]),
            issued_at=float(claims["iat"]),
        )

    def verify_visitor(self, token: str) -> VisitorPrincipal:
        claims = self.decode(token, "visitor")
        return VisitorPrincipal(
            tenant=claims["tenant"], visitor_id=claims["sub"], expires_at=float(claims["exp"])
        )

    def verify_any(self, token: str) -> Principal:
        """An agent access token or a visitor token, whichever verifies."""
        try:
            return self.verify_access(token)
        except InvalidToken as agent_error:
            try:
                return self.verify_visitor(token)
            except InvalidToken:
                raise agent_error from None
