"""What every platform client raises, so one retry policy serves all of them."""


class DeliveryError(Exception):
    """A send failed. ``permanent`` errors are reported, transient ones retried.

    ``retry_after`` is the platform's own wait hint (Telegram 429), honoured over backoff.
    """

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason[:200]
        self.permanent = permanent
        self.retry_after = retry_after
