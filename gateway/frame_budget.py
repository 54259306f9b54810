"""How many frames a connection may send: one budget for ops, a separate one for typing.

A customer typing fast sends a typing signal next to each message; when both drew on one
budget, the signals used up what the messages needed and messages were refused
(``rate_limited``) for frames that are only ever shown live. Typing signals now draw on
their own budget (``RELAYDESK_WS_TYPING_RATE_PER_S`` / ``_BURST``); every other frame,
pings and malformed ones included, on the op budget. Refusals of both count towards the
close for repeated violations (a flood of typing frames is still a flood).
"""

from gateway.ratelimit import TokenBucket
from relaydesk.settings import Settings


class FrameBudget:
    __slots__ = ("_ops", "_typing")  # one per open websocket

    def __init__(self, settings: Settings) -> None:
        self._ops = TokenBucket(settings.ws_rate_per_s, settings.ws_rate_burst)
        self._typing = TokenBucket(settings.ws_typing_rate_per_s, settings.ws_typing_burst)

    def take(self, op: object) -> float | None:
        """Take one frame of ``op``: None when allowed, else the seconds until it would be."""
        bucket = self._typing if op == "typing" else self._ops
        return None if bucket.take() else bucket.retry_after()

    @property
    def refusals(self) -> int:
        return self._ops.refusals + self._typing.refusals
