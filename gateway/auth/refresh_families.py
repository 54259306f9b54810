"""Refresh-token families: every refresh token is used once, and logout ends them all.

A login starts a family (its id is the refresh token's ``fam`` claim); each refresh
rotates it — the presented token must be the family's current one (its ``jti``), and a new
one replaces it. A token presented again after its rotation means two parties hold the
family's tokens (one of them stole a token): the whole family is revoked, thief and
owner alike are signed out, and the owner signs in again (OAuth 2.0 Security BCP,
RFC 9700 §2.2.2). ``POST /api/auth/logout`` revokes the family of the token it is given.

Where the state lives: in MongoDB (``refresh_families``), which every gateway instance
shares. The check and the rotation are one atomic ``find_one_and_update`` keyed by family
and current ``jti``, so two gateways handed the same token at the same moment cannot both
rotate it — exactly one wins and the other sees a reuse. An event on the log would not do:
each gateway folds the log on its own, a little later than the others (both could accept
the same token before either saw the other's event), and a gateway tails only the last
15 minutes, while families live for ``RELAYDESK_REFRESH_TOKEN_TTL_S`` (7 days). Documents
expire with their family (TTL index on ``expires_at``).

Without ``MONGO_URL`` (a single-process development gateway) the families are kept in the
process (:class:`MemoryRefreshFamilies`): correct for one gateway, lost at restart.
"""

import enum
import time
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

COLLECTION = "refresh_families"


class Rotation(enum.Enum):
    ROTATED = "rotated"
    REUSED = "reused"  # an already rotated token: the family is now revoked
    REVOKED = "revoked"  # logged out, or revoked after a reuse earlier
    UNKNOWN = "unknown"  # expired and gone, or never issued here


class RefreshFamilies(Protocol):
    async def start(
        self, family: str, tenant: str, agent_id: str, jti: str, expires_at: float
    ) -> None: ...

    async def rotate(
        self, family: str, presented: str, replacement: str, expires_at: float
    ) -> Rotation: ...

    async def revoke(self, family: str, reason: str) -> bool: ...


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class MongoRefreshFamilies:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self._families = db[COLLECTION]
        self._indexed = False

    async def _ensure_index(self) -> None:
        if not self._indexed:
            await self._families.create_index("expires_at", expireAfterSeconds=0)
            self._indexed = True

    async def start(
        self, family: str, tenant: str, agent_id: str, jti: str, expires_at: float
    ) -> None:
        await self._ensure_index()
        try:
            await self._families.insert_one(
                {
                    "_id": family,
                    "tenant": tenant,
                    "agent_id": agent_id,
                    "jti": jti,
                    "revoked": False,
                    "expires_at": _when(expires_at),
                }
            )
        except DuplicateKeyError:  # family ids are random: only a retried insert gets here
            pass

    async def rotate(
        self, family: str, presented: str, replacement: str, expires_at: float
    ) -> Rotation:
        rotated = await self._families.find_one_and_update(
            {"_id": family, "jti": presented, "revoked": False},
            {"$set": {"jti": replacement, "expires_at": _when(expires_at)}},
        )
        if rotated is not None:
            return Rotation.ROTATED
        current = await self._families.find_one({"_id": family})
        if current is None:
            return Rotation.UNKNOWN
        if current.get("revoked"):
            return Rotation.REVOKED
        await self.revoke(family, "reused")
        return Rotation.REUSED

    async def revoke(self, family: str, reason: str) -> bool:
        done = await self._families.update_one(
            {"_id": family, "revoked": False}, {"$set": {"revoked": True, "reason": reason}}
        )
        return done.modified_count > 0


class MemoryRefreshFamilies:
    """One process's families (no MongoDB configured): same rules, not shared."""

    def __init__(self) -> None:
        self._families: dict[str, dict[str, Any]] = {}

    async def start(
        self, family: str, tenant: str, agent_id: str, jti: str, expires_at: float
    ) -> None:
        now = time.time()
        for expired in [f for f, state in self._families.items() if state["expires_at"] < now]:
            del self._families[expired]
        self._families[family] = {"jti": jti, "revoked": False, "expires_at": expires_at}

    async def rotate(
        self, family: str, presented: str, replacement: str, expires_at: float
    ) -> Rotation:
        current = self._families.get(family)
        if current is None:
            return Rotation.UNKNOWN
        if current["revoked"]:
            return Rotation.REVOKED
        if current["jti"] != presented:
            current["revoked"] = True
            return Rotation.REUSED
        current["jti"], current["expires_at"] = replacement, expires_at
        return Rotation.ROTATED

    async def revoke(self, family: str, reason: str) -> bool:
        current = self._families.get(family)
        if current is None or current["revoked"]:
            return False
        current["revoked"] = True
        return True
