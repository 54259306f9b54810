"""The login lockout: too many failed logins for one account lock it for a while.

An account is its tenant and its address in the one normalised form
(:func:`relaydesk.emails.normalize_email`), the same form the account lookup uses, so every
spelling of an address shares one budget (docs/security.md, 3).

Every admin service instance answering ``auth.check_password`` must see the same count, or
N instances allow N times the guesses. :class:`StoredLockout` keeps the counts in MongoDB
with atomic updates (one document per account, ``login_failures``, expiring by itself);
:class:`MemoryLockout` keeps them in the process, for an admin service run without MongoDB
(one instance only: it says so in its log at start).
"""

import hashlib
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Protocol

from beanie import Document
from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from relaydesk.emails import normalize_email
from relaydesk.store import bound

MAX_FAILURES = 5
WINDOW_S = 15 * 60
LOCK_S = 60.0


class Lockout(Protocol):
    async def locked_for(self, tenant: str, email: str) -> float:
        """Seconds until the account may try again (0: it may now)."""

    async def failed(self, tenant: str, email: str) -> None: ...

    async def succeeded(self, tenant: str, email: str) -> None: ...


def account_key(tenant: str, email: str) -> str:
    """The account's key: a digest, so attempted addresses are not stored in the clear."""
    return hashlib.sha256(f"{tenant}\x00{normalize_email(email)}".encode()).hexdigest()


class LoginFailures(Document):
    """One account's recent failed logins (``_id`` = :func:`account_key`)."""

    id: str  # type: ignore[assignment]
    failures: int = 0
    window_start: datetime
    locked_until: datetime | None = None
    expires_at: datetime  # nothing here matters after this: MongoDB removes the document

    class Settings:
        name = "login_failures"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0)
        ]


class StoredLockout:
    """The lockout shared by every admin instance, in MongoDB.

    Each failure is one atomic ``$inc`` on the account's document, so two instances
    counting at once never lose a failure; the instance whose increment reaches
    ``max_failures`` sets the lock. Times are wall-clock (UTC), as every instance reads it.
    """

    def __init__(
        self,
        db: AsyncDatabase[Any],
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        lock_s: float = LOCK_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._db, self._clock = db, clock
        self.max_failures = max_failures
        self.window, self.lock = timedelta(seconds=window_s), timedelta(seconds=lock_s)

    async def _collection(self) -> Any:
        return (await bound(self._db, LoginFailures)).get_pymongo_collection()

    async def locked_for(self, tenant: str, email: str) -> float:
        doc = await (await self._collection()).find_one({"_id": account_key(tenant, email)})
        until = doc.get("locked_until") if doc else None
        return max(0.0, (until - self._clock()).total_seconds()) if until else 0.0

    async def failed(self, tenant: str, email: str) -> None:
        key, now, failures = account_key(tenant, email), self._clock(), await self._collection()
        # a window that is over starts again (failures counted in it no longer count)
        await failures.update_one(
            {"_id": key, "window_start": {"$lt": now - self.window}},
            {"$set": {"failures": 0, "window_start": now}},
        )
        count = {
            "$inc": {"failures": 1},
            "$setOnInsert": {"window_start": now},
            "$set": {"expires_at": now + self.window + self.lock},
        }
        try:
            doc = await failures.find_one_and_update(
                {"_id": key}, count, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:  # two first failures raced to create the document
            doc = await failures.find_one_and_update(
                {"_id": key}, count, return_document=ReturnDocument.AFTER
            )
        if doc is None:  # counted, but a racing upsert answered without the document
            doc = await failures.find_one({"_id": key}) or {"failures": 0}
        if doc["failures"] >= self.max_failures:
            await failures.update_one(
                {"_id": key},
                {"$set": {"locked_until": now + self.lock, "failures": 0, "window_start": now}},
            )

    async def succeeded(self, tenant: str, email: str) -> None:
        await (await self._collection()).update_one(
            {"_id": account_key(tenant, email)}, {"$set": {"failures": 0}}
        )


class MemoryLockout:
    """The lockout of one process (an admin service without MongoDB)."""

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        lock_s: float = LOCK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}
        self.max_failures, self.window_s, self.lock_s = max_failures, window_s, lock_s
        self._clock = clock

    async def locked_for(self, tenant: str, email: str) -> float:
        until = self._locked_until.get(account_key(tenant, email), 0.0)
        return max(0.0, until - self._clock())

    async def failed(self, tenant: str, email: str) -> None:
        key, now = account_key(tenant, email), self._clock()
        failures = self._failures[key]
        failures.append(now)
        while failures and failures[0] < now - self.window_s:
            failures.popleft()
        if len(failures) >= self.max_failures:
            self._locked_until[key] = now + self.lock_s
            failures.clear()

    async def succeeded(self, tenant: str, email: str) -> None:
        self._failures.pop(account_key(tenant, email), None)
