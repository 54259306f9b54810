"""Where log readers and the log publisher connect: the broker's stream-protocol port."""

import urllib.parse
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamEndpoint:
    """Where log readers connect: the same broker, user and vhost, on the stream protocol port."""

    host: str
    port: int
    username: str
    password: str
    vhost: str
    heartbeat_s: int = 10

    @classmethod
    def from_urls(cls, amqp_url: str, stream_url: str | None = None) -> "StreamEndpoint":
        """``stream_url`` (``rabbitmq-stream://user:pass@host:5552/vhost``) wins; else the AMQP URL on port 5552."""
        parsed = urllib.parse.urlsplit(stream_url or amqp_url)
        path = parsed.path[1:] if parsed.path.startswith("/") else parsed.path
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=(parsed.port or DEFAULT_STREAM_PORT) if stream_url else DEFAULT_STREAM_PORT,
            username=urllib.parse.unquote(parsed.username or "guest"),
            password=urllib.parse.unquote(parsed.password or "guest"),
            vhost=urllib.parse.unquote(path) or "/",
        )


DEFAULT_STREAM_PORT = 5552
