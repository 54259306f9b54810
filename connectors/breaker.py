"""A circuit breaker per connector: a platform that keeps failing is left alone for a while.

closed → (``failures_to_open`` failed rounds in a row) → open: nothing is sent for ``open_s``
→ half-open: one trial round goes through; success closes it, a failure opens it again at once.
"""

import time
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(self, *, failures_to_open: int = 3, open_s: float = 5.0) -> None:
        self._failures_to_open = failures_to_open
        self._open_s = open_s
        self._failures = 0
        self._open_until = 0.0

    @property
    def state(self) -> State:
        if self._failures < self._failures_to_open:
            return "closed"
        return "open" if time.monotonic() < self._open_until else "half_open"

    def allows(self) -> bool:
        return self.state != "open"  # after open_s one trial round goes through (half-open)

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = 0.0

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self._failures_to_open:
            self._open_until = time.monotonic() + self._open_s

    @property
    def open_for(self) -> float:
        return max(0.0, self._open_until - time.monotonic())
