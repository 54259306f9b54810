"""Real servers for tests: RabbitMQ vhosts and MongoDB databases, isolated per test.

Order of preference: a URL from the environment (RELAYDESK_TEST_AMQP_URL, MONGO_URL),
then testcontainers when a Docker engine answers, then the local servers (system
RabbitMQ; SecantusDB started for the session).
"""

import os
import subprocess

from relaydesk.embedded import EmbeddedMongo, ensure_rabbitmq
from relaydesk.vhosts import RabbitVhosts


def docker_engine_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


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
