"""A token bucket: ``rate`` tokens a second, at most ``burst`` saved (per connection or address)."""

import time


class TokenBucket:
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
