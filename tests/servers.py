"""Real servers for tests: RabbitMQ vhosts and MongoDB databases, isolated per test.

Order of preference: a URL from the environment (RELAYDESK_TEST_AMQP_URL, MONGO_URL),
then testcontainers when a Docker engine answers, then the local servers (system
RabbitMQ; SecantusDB started for the session).
"""

import os
import subprocess
import urllib.parse
import uuid

import httpx

from relaydesk.embedded import EmbeddedMongo, ensure_rabbitmq


def docker_engine_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class RabbitVhosts:
    """Creates and deletes throwaway vhosts through the management API (rabbitmqctl as fallback)."""

    def __init__(self, base_url: str, management_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.management_url = management_url.rstrip("/")
        parsed = urllib.parse.urlparse(base_url)
        self.user = urllib.parse.unquote(parsed.username or "guest")
        self.password = urllib.parse.unquote(parsed.password or "guest")
        self.http = httpx.Client(auth=(self.user, self.password), timeout=30)

    def create(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        quoted = urllib.parse.quote(name, safe="")
        self.http.put(f"{self.management_url}/api/vhosts/{quoted}").raise_for_status()
        self.http.put(
            f"{self.management_url}/api/permissions/{quoted}/{self.user}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
        ).raise_for_status()
        return name

    def url_for(self, vhost: str) -> str:
        return f"{self.base_url}/{urllib.parse.quote(vhost, safe='')}"

    def delete(self, vhost: str) -> None:
        self.http.delete(f"{self.management_url}/api/vhosts/{urllib.parse.quote(vhost, safe='')}")


def rabbit_vhosts() -> RabbitVhosts:
    url = os.environ.get("RELAYDESK_TEST_AMQP_URL")
    if url:
        return RabbitVhosts(url, os.environ.get("RELAYDESK_TEST_RABBIT_MANAGEMENT", "http://127.0.0.1:15672"))
    ensure_rabbitmq()
    return RabbitVhosts("amqp://guest:guest@127.0.0.1:5672", "http://127.0.0.1:15672")


class MongoServer:
    """The session's MongoDB-protocol server: env URL, a container, or embedded SecantusDB."""

    def __init__(self) -> None:
        self.url = os.environ.get("MONGO_URL") or ""
        self._container = None
        self.embedded: EmbeddedMongo | None = None
        if self.url:
            return
        if docker_engine_available():
            from testcontainers.mongodb import MongoDbContainer

            self._container = MongoDbContainer("mongo:7").start()
            self.url = self._container.get_connection_url()
        else:
            self.embedded = EmbeddedMongo(":memory:").start()
            self.url = self.embedded.url

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
        if self.embedded is not None:
            self.embedded.stop()
