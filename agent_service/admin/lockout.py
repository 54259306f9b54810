"""The login lockout: too many failed logins for one account lock it for a while.

LIMIT: the lockout counters live in the admin process; with several instances answering
queries each counts separately (documented in docs/admin.md).
"""

import time
from collections import defaultdict, deque

MAX_FAILURES = 5
WINDOW_S = 15 * 60
LOCK_S = 60.0


class Lockout:
    def __init__(
        self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, lock_s: float = LOCK_S
    ) -> None:
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._locked_until: dict[tuple[str, str], float] = {}
        self.max_failures, self.window_s, self.lock_s = max_failures, window_s, lock_s

    def locked_for(self, tenant: str, email: str) -> float:
        return max(0.0, self._locked_until.get((tenant, email.lower()), 0.0) - time.monotonic())

    def failed(self, tenant: str, email: str) -> None:
        key, now = (tenant, email.lower()), time.monotonic()
        failures = self._failures[key]
        failures.append(now)
        while failures and failures[0] < now - self.window_s:
            failures.popleft()
        if len(failures) >= self.max_failures:
            self._locked_until[key] = now + self.lock_s
            failures.clear()

    def succeeded(self, tenant: str, email: str) -> None:
        self._failures.pop((tenant, email.lower()), None)
