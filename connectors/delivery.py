"""What every platform client raises, so one retry policy serves all of them."""


class DeliveryError(Exception):
    """A send failed. ``permanent`` errors are reported and park the reply (retrying would not
    help: the agent retries, or fixing the credentials resumes it); transient ones are retried.

    ``retry_after`` is the platform's own wait hint (Telegram 429), honoured over backoff.
    ``credentials``: the platform refused the connector itself (revoked token, wrong secret),
    so every reply of that connector waits until its credentials are changed.
    ``defer_s``: a quota that resets later (WeChat's daily 45009): the connector sends nothing
    for that long and the reply is not retried within the round.
    ``unsendable``: no retry can ever send this one (a file over the platform's limit, of a
    type it cannot send): reported and dropped, the conversation's next replies go on.
    ``behind``: not tried at all, it waits behind this earlier parked reply (a message id).
    ``moved_to``: the chat has a new id (a Telegram group upgraded to a supergroup): the
    conversation moves there and the reply is sent there.
    """

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        credentials: bool = False,
        defer_s: float | None = None,
        unsendable: bool = False,
        behind: str | None = None,
        moved_to: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason[:200]
        self.permanent = permanent
        self.retry_after = retry_after
        self.credentials = credentials
        self.defer_s = defer_s
        self.unsendable = unsendable
        self.behind = behind
        self.moved_to = moved_to

    @property
    def waits_for(self) -> str:
        """What a reply parked by this error waits for (``OutboundFailed.waits_for``)."""
        if self.credentials:
            return "credentials"
        return "earlier_reply" if self.behind else "retry"
