"""Event ids: time-ordered for fresh events, derived for client resends.

A fresh id is 12 hex digits of milliseconds since the epoch followed by 20 random hex
digits, so ids sort by creation time. A client command carries an idempotency key; its
event id is derived from (tenant, actor, key) so a resend yields the *same* id and every
consumer's dedupe-by-id absorbs it (design decision 5).
"""

import hashlib
import os
import time

EVENT_ID_LENGTH = 32


def new_event_id(now_ms: int | None = None) -> str:
    """Return a fresh time-ordered id (sortable as a string)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{ms:012x}{os.urandom(10).hex()}"


def derive_event_id(tenant: str, actor_id: str, idempotency_key: str) -> str:
    """Return the id every resend of one client command maps to.

    The first 12 digits stay a timestamp-shaped prefix (all ``f``s would sort last, so
    we use a fixed ``d`` marker) to keep ids the same length and alphabet.
    """
    digest = hashlib.sha256(f"{tenant}\x1f{actor_id}\x1f{idempotency_key}".encode()).hexdigest()
    return "d" + digest[: EVENT_ID_LENGTH - 1]
