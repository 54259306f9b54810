"""A token bucket: ``rate`` tokens a second, at most ``burst`` saved (per connection or address)."""

import time
from collections import OrderedDict

MAX_ADDRESSES = 100_000  # least recently seen addresses are forgotten (their budget starts afresh)


class TokenBucket:
    __slots__ = ("_at", "_tokens", "burst", "rate", "refusals")  # two per open websocket

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()
        self.refusals = 0

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.refusals += 1
        return False

    def retry_after(self) -> float:
        """Seconds until the next token (0 when one is there now)."""
        missing = 1 - min(self.burst, self._tokens + (time.monotonic() - self._at) * self.rate)
        return max(0.0, missing / self.rate) if self.rate > 0 else float("inf")


class AddressThrottle:
    """One token bucket per client address (the credential endpoints' limit)."""

    def __init__(self, rate_per_s: float, burst: int, capacity: int = MAX_ADDRESSES) -> None:
        self._rate, self._burst, self._capacity = rate_per_s, burst, capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def retry_after(self, address: str) -> float | None:
        """Take one attempt for ``address``: None when allowed, else seconds to wait."""
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = TokenBucket(self._rate, self._burst)
            while len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(address)
        return None if bucket.take() else bucket.retry_after()
