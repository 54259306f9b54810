"""Real servers for tests: RabbitMQ vhosts and MongoDB databases, isolated per test.

Order of preference: a URL from the environment (RELAYDESK_TEST_AMQP_URL, MONGO_URL),
then testcontainers when a Docker engine answers (``rabbitmq:3.13-management`` with the
stream plugin, ``mongo:7``), then the local servers (system RabbitMQ; SecantusDB started
for the session). Without Docker the local path is exactly what it always was.
"""

import os
import subprocess
from pathlib import Path

from tools.cluster import LocalRabbitCluster
from tools.embedded import EmbeddedMongo, ensure_rabbitmq
from tools.vhosts import RabbitVhosts


def docker_engine_available() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


PLUGINS_FILE = (
    Path(__file__).resolve().parents[1] / "docker" / "rabbitmq-enabled-plugins"
)  # management + stream, as deployed


class RabbitServer:
    """The session's RabbitMQ: env URL, a container, or the system broker (the default here).

    ``vhosts`` hands out throwaway vhosts. Every test shares it: a test that stops a broker
    stops one of its own (``OwnRabbitNode``).
    """

    def __init__(self) -> None:
        self._container = None
        url = os.environ.get("RELAYDESK_TEST_AMQP_URL")
        if url:
            self.vhosts = RabbitVhosts(
                url,
                os.environ.get("RELAYDESK_TEST_RABBIT_MANAGEMENT", "http://127.0.0.1:15672"),
                # a broker of one's own whose stream port is not 5552, e.g. rabbitmq-stream://
                # guest:guest@127.0.0.1:5590
                stream_base_url=os.environ.get("RELAYDESK_TEST_STREAM_URL"),
            )
        elif docker_engine_available():
            self.vhosts = self._start_container()
        else:
            ensure_rabbitmq()
            self.vhosts = RabbitVhosts(
                "amqp://guest:guest@127.0.0.1:5672", "http://127.0.0.1:15672"
            )
            # The local broker outlives test runs: what crashed runs left is removed first.
            self.vhosts.remove_abandoned()

    def _start_container(self) -> RabbitVhosts:
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.wait_strategies import LogMessageWaitStrategy

        # The stream port is mapped to a random host port: readers are told it through the
        # stream URL, and rstream's load-balancer mode accepts the node's own advertised name.
        container = (
            DockerContainer("rabbitmq:3.13-management")
            .with_exposed_ports(5672, 5552, 15672)
            .with_volume_mapping(str(PLUGINS_FILE), "/etc/rabbitmq/enabled_plugins", "ro")
            .waiting_for(
                LogMessageWaitStrategy("Server startup complete").with_startup_timeout(120)
            )
        )
        self._container = container.start()
        host = container.get_container_host_ip()
        return RabbitVhosts(
            f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}",
            f"http://{host}:{container.get_exposed_port(15672)}",
            stream_base_url=f"rabbitmq-stream://guest:guest@{host}:{container.get_exposed_port(5552)}",
        )

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()


class OwnRabbitNode:
    """A RabbitMQ node of one's own (tools/cluster.py, one node, the system's package): a
    test that stops its broker stops only this one, so it runs next to the other tests
    instead of after them. ``vhosts`` as ``RabbitServer``'s; ``ctl`` runs ``rabbitmqctl`` on it."""

    def __init__(self) -> None:
        self._cluster = LocalRabbitCluster(1).start()
        node = self._cluster.nodes[0]
        self.vhosts = RabbitVhosts(
            f"amqp://guest:guest@127.0.0.1:{node.amqp_port}",
            self._cluster.management_url(),
            stream_base_url=f"rabbitmq-stream://guest:guest@127.0.0.1:{node.stream_port}",
        )

    def ctl(self, *args: str) -> None:
        self._cluster.ctl(self._cluster.nodes[0], *args)

    def stop(self) -> None:
        self._cluster.stop()


def stream_override(vhosts: RabbitVhosts, vhost: str) -> dict[str, str]:
    """Settings fields for a container's mapped stream port; the local broker keeps 5552."""
    stream_url = vhosts.stream_url_for(vhost)
    return {"stream_url": stream_url} if stream_url else {}


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
