"""An AMQP connection that knows every node of a cluster and moves on when one fails.

aio-pika's robust connection reconnects to the one URL it was given; on a cluster that node
may be the one that is down. This one is given every node's URL and, whenever it has to
connect again (the connection dropped, or the last attempt failed), tries the next node.
Channels, consumers and declarations are restored by aio-pika as usual.
"""

from typing import Any

from aio_pika import RobustConnection
from yarl import URL


class FailoverConnection(RobustConnection):
    """A robust connection over a list of node URLs (same user and vhost on each node).

    How it knows an attempt begins: aio-pika clears ``transport`` at the start of every
    connection attempt (and once in the constructor); from the second attempt on, each
    clearing moves to the next node.
    """

    def __init__(self, urls: list[str], *, first: int = 0, **kwargs: Any) -> None:
        self._nodes = [URL(url) for url in urls]
        self._node = first % len(self._nodes)
        self._attempts = 0
        super().__init__(self._nodes[self._node], **kwargs)

    @property
    def url(self) -> URL:
        return self._nodes[self._node]

    @url.setter
    def url(self, value: URL) -> None:
        # aio-pika sets it in the constructor and when the password is rotated
        # (update_secret): the same credentials go to every node.
        self._nodes = [
            node.with_user(value.user).with_password(value.password) for node in self._nodes
        ]

    @property
    def transport(self) -> Any:
        return self._transport

    @transport.setter
    def transport(self, value: Any) -> None:
        if value is None:
            if self._attempts > 1:
                self._node = (self._node + 1) % len(self._nodes)
            self._attempts += 1
        self._transport = value
