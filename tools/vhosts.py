"""Throwaway RabbitMQ vhosts through the management API: for tests and `relaydesk bench`,
so neither ever touches a real deployment's log."""

import urllib.parse
import uuid

import httpx


class RabbitVhosts:
    """Creates and deletes throwaway vhosts through the management API ."""

    def __init__(
        self,
        base_url: str,
        management_url: str,
        prefix: str = "test",
        stream_base_url: str | None = None,
    ) -> None:
        self.prefix = prefix
        self.base_url = base_url.rstrip("/")
        # Only for a broker whose stream port is not the AMQP host's 5552 (a container's mapped
        # port); None keeps every reader on the default endpoint.
        self.stream_base_url = stream_base_url.rstrip("/") if stream_base_url else None
        self.management_url = management_url.rstrip("/")
        parsed = urllib.parse.urlparse(base_url)
        self.user = urllib.parse.unquote(parsed.username or "guest")
        self.password = urllib.parse.unquote(parsed.password or "guest")
        self.http = httpx.Client(auth=(self.user, self.password), timeout=30)

    def create(self) -> str:
        name = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
        quoted = urllib.parse.quote(name, safe="")
        self.http.put(f"{self.management_url}/api/vhosts/{quoted}").raise_for_status()
        self.http.put(
            f"{self.management_url}/api/permissions/{quoted}/{self.user}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        return name

    def url_for(self, vhost: str) -> str:
        return f"{self.base_url}/{urllib.parse.quote(vhost, safe='')}"

    def stream_url_for(self, vhost: str) -> str | None:
        if self.stream_base_url is None:
            return None
        return f"{self.stream_base_url}/{urllib.parse.quote(vhost, safe='')}"

    def delete(self, vhost: str) -> None:
        self.http.delete(f"{self.management_url}/api/vhosts/{urllib.parse.quote(vhost, safe='')}")
