"""Websockets per client address: how many may be open, how fast new ones may come.

Checked before the token is even verified, so refusing costs nothing: 2,000 sockets from
one address were all accepted before (125 → 294 MB). A refused upgrade is answered
``429 rate_limited`` with ``Retry-After`` (an HTTP answer to the upgrade: browsers see the
socket fail and back off). The address is the real client's (``gateway/server.py``:
proxies only when trusted). LIMIT: counted per gateway process, like the other limits.
"""

from collections import Counter

from gateway.ratelimit import AddressThrottle
from relaydesk.settings import Settings


class Refused(Exception):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class WebsocketLimits:
    def __init__(self, settings: Settings) -> None:
        self._max_open = settings.ws_max_per_address
        self._connects = AddressThrottle(
            settings.ws_connect_rate_per_min / 60.0, settings.ws_connect_burst
        )
        self.open: Counter[str] = Counter()

    def opening(self, address: str) -> None:
        """Count one socket of ``address`` as open, or raise :class:`Refused`."""
        if self.open[address] >= self._max_open:
            raise Refused(f"at most {self._max_open} open websockets per client address", 5.0)
        wait = self._connects.retry_after(address)
        if wait is not None:
            raise Refused("too many new websockets from this address; retry later", wait)
        self.open[address] += 1

    def closed(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]
