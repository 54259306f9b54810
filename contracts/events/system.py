"""System events: markers services publish to find the head of the log."""

from contracts.base import EventData, Id


class LogMarker(EventData):
    """Published by a starting consumer; when it reads this back it has caught up.

    The log has no cheap "current head" over AMQP 0-9-1, so a marker is the honest way
    to know that every event published before our start has been folded.
    """

    TYPE = "system.marker"
    service: Id
    nonce: Id


MODELS = (LogMarker,)
SYSTEM_TENANT = "_system"
