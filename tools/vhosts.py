"""Throwaway RabbitMQ vhosts through the management API: for tests and `relaydesk bench`,
so neither ever touches a real deployment's log."""

import os
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
        # The creating process's id is in the name: a run that died before deleting its vhosts
        # (a crashed worker, a killed session) leaves them to the next run's clean-up.
        name = f"{self.prefix}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
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

    def remove_abandoned(self) -> int:
        """Delete this prefix's vhosts whose creating process is gone (on this machine).

        Each throwaway vhost holds a stream and quorum queues; a hundred left behind by
        crashed runs made the broker's stream port time out for everyone.
        """
        listed = self.http.get(f"{self.management_url}/api/vhosts", params={"columns": "name"})
        listed.raise_for_status()
        removed = 0
        for entry in listed.json():
            parts = str(entry.get("name", "")).split("-")
            if len(parts) == 3 and parts[0] == self.prefix and parts[1].isdigit():
                if not _process_alive(int(parts[1])):
                    self.delete(entry["name"])
                    removed += 1
        return removed

    def delete(self, vhost: str) -> None:
        self.http.delete(f"{self.management_url}/api/vhosts/{urllib.parse.quote(vhost, safe='')}")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
