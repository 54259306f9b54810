"""A RabbitMQ cluster of several nodes on one machine, from the system's RabbitMQ package.

For the cluster tests and `relaydesk bench --cluster N`: each node has its own node name,
ports and data directory; all share the rabbitmq user's Erlang cookie (they run as that
user). Node 1 boots, then nodes 2..N together, each joining node 1 as it boots (peer
discovery, ``classic_config`` naming node 1): no node is stopped and started again to join,
as ``rabbitmqctl join_cluster`` would need. Every node advertises its
own stream port on 127.0.0.1, so stream clients can follow the log's leader and replicas
(relaydesk/bus/endpoint.py). Nothing here touches the system broker (node ``rabbit``).

Ports: node i (1-based) listens for AMQP on ``base_port + i``, for the stream protocol on
``base_port + 10 + i``, for the management API on ``base_port + 10_000 + i``, and for
Erlang distribution on ``base_port + 20_000 + i``. Without a ``base_port`` the cluster claims
a free one (its ports reserved machine-wide like every port handed out here,
``tools.embedded.PORTS``, until ``stop``), so clusters and other servers started at the same
moment on one machine, e.g. by parallel test workers, never pick the same ports.
"""

import json
import os
import pwd
import random
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

from tools.embedded import PORTS, EmbeddedError, port_open, wait_for_port

log = structlog.get_logger(__name__)

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
RABBITMQ_USER = "rabbitmq"
PLUGINS = "[rabbitmq_management,rabbitmq_stream]."
GUEST = ("guest", "guest")  # the default user, allowed from loopback only
# Base ports handed out by claim_base_port: node ports stay below 32768, where the kernel
# picks the local ends of outgoing connections (ephemeral ports), and clear of the system
# broker's (5672, 5552, 15672, 25672).
CLAIM_RANGE = range(5700, 12_700, 50)
# A node's ports, as offsets from the base: AMQP, stream, management, Erlang distribution.
NODE_PORT_OFFSETS = (0, 10, 10_000, 20_000)


def node_port_ranges(base: int, size: int) -> list[range]:
    """The ports the nodes of a cluster on ``base`` listen on, one range per kind."""
    return [range(base + offset + 1, base + offset + size + 1) for offset in NODE_PORT_OFFSETS]


def claim_base_port(size: int) -> tuple[int, list[range]]:
    """A base port whose node ports are all free, and the port ranges reserved for it.

    The reservation is the one every port handed out on this machine goes through
    (``tools.embedded.PORTS``: its management and distribution ports lie where
    ``free_ports`` draws from, so two pickers of their own could hand out the same port);
    the port check covers everything else. ``PORTS.release`` gives them back.
    """
    candidates = list(CLAIM_RANGE)
    random.shuffle(candidates)
    for base in candidates:
        reserved: list[range] = []
        for ports in node_port_ranges(base, size):
            if not PORTS.reserve(ports):
                break
            reserved.append(ports)
        else:
            if not any(port_open("127.0.0.1", port) for ports in reserved for port in ports):
                return base, reserved
        for ports in reserved:
            PORTS.release(ports)
    raise EmbeddedError(f"no free base port for a local cluster of {size} nodes")


@dataclass(frozen=True)
class ClusterNode:
    index: int
    name: str
    amqp_port: int
    stream_port: int
    management_port: int
    dist_port: int
    directory: Path

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"


class LocalRabbitCluster:
    """Starts, joins, kills and restarts the nodes of a local cluster.

    Args:
        size: how many nodes (at most 9: see the port layout).
        base_port: see the module docstring; one no other cluster on the machine uses, or
            None to claim a free one.
        directory: where the nodes keep their data and logs (a fresh temporary one if unset;
            removed on ``stop`` only when it was created here).
    """

    def __init__(self, size: int = 3, base_port: int | None = None, directory: Path | None = None):
        if not (RABBITMQ_BIN / "rabbitmq-server").exists():
            raise EmbeddedError(
                "RabbitMQ is not installed: run scripts/bootstrap.sh (apt-get install "
                "rabbitmq-server)"
            )
        self._port_claim: list[range] = []  # reserved by claim_base_port, released by stop()
        if base_port is None:
            base_port, self._port_claim = claim_base_port(size)
        self._own_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="relaydesk-cluster-"))
        tag = f"rd{base_port}"
        self.nodes = [
            ClusterNode(
                index=i,
                name=f"{tag}n{i}@localhost",
                amqp_port=base_port + i,
                stream_port=base_port + 10 + i,
                management_port=base_port + 10_000 + i,
                dist_port=base_port + 20_000 + i,
                directory=self.directory / f"node{i}",
            )
            for i in range(1, size + 1)
        ]

    # --- addresses -----------------------------------------------------------------

    def amqp_url(self, vhost: str = "/") -> str:
        """Every node's AMQP URL, comma-separated (RELAYDESK_AMQP_URL)."""
        quoted = urllib.parse.quote(vhost, safe="")
        return ",".join(
            f"amqp://guest:guest@127.0.0.1:{node.amqp_port}/{quoted}" for node in self.nodes
        )

    def stream_url(self, vhost: str = "/") -> str:
        """Every node's stream-protocol URL, comma-separated (RELAYDESK_STREAM_URL)."""
        quoted = urllib.parse.quote(vhost, safe="")
        return ",".join(
            f"rabbitmq-stream://guest:guest@127.0.0.1:{node.stream_port}/{quoted}"
            for node in self.nodes
        )

    def management_url(self, node: ClusterNode | None = None) -> str:
        return f"http://127.0.0.1:{(node or self.nodes[0]).management_port}"

    # --- life cycle ----------------------------------------------------------------

    def start(self, timeout: float = 120) -> "LocalRabbitCluster":
        """Start every node, join them into one cluster, wait until all run."""
        busy = [n for n in self.nodes if port_open("127.0.0.1", n.amqp_port)]
        if busy:
            raise EmbeddedError(
                f"port {busy[0].amqp_port} is taken: another cluster runs on this base port"
            )
        try:
            return self._form(timeout)
        except BaseException:
            self.stop()  # no node left running, no port claim held, by a start that failed
            raise

    def _form(self, timeout: float) -> "LocalRabbitCluster":
        for node in self.nodes:
            self._prepare(node)
        # Node 1 first: nodes joining one that is still booting can wait on each other's
        # tables. Then the others together, each joining node 1 as it boots.
        first, others = self.nodes[0], self.nodes[1:]
        self._launch(first)
        self._serving(first, timeout)
        for node in others:
            self._launch(node)
        for node in others:
            self._serving(node, timeout)
        if len(self.nodes) > 1:
            self._check_joined()
        log.info("cluster_started", nodes=[node.name for node in self.nodes])
        return self

    def pids(self) -> list[int]:
        """The nodes' Erlang VMs."""
        return [int(node.pid_file.read_text().strip()) for node in self.nodes]

    def kill(self, node: ClusterNode) -> float:
        """SIGKILL the node's Erlang VM: no goodbyes, its sockets reset, like a lost host.

        Returns when it is gone, with the ``time.monotonic()`` at which the signal was sent.
        """
        pid = int(node.pid_file.read_text().strip())
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("cluster_node_killed", node=node.name)
        return killed_at

    def restart(self, node: ClusterNode, timeout: float = 120) -> None:
        """Start a killed node again; it rejoins the cluster from its data directory."""
        node.pid_file.unlink(missing_ok=True)
        self._launch(node)
        self._serving(node, timeout)

    def stop(self) -> None:
        for node in self.nodes:
            if node.pid_file.exists():
                try:
                    pid = int(node.pid_file.read_text().strip())
                except ValueError:
                    continue
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)
        for ports in self._port_claim:
            PORTS.release(ports)
        self._port_claim = []

    def __enter__(self) -> "LocalRabbitCluster":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- management ----------------------------------------------------------------

    def ctl(self, node: ClusterNode, *args: str, timeout: float = 180) -> str:
        """``rabbitmqctl -n <node> …`` as the rabbitmq user (its cookie is the cluster's)."""
        result = subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", node.name, *args],
            env=self._env(node),
            user=RABBITMQ_USER if os.geteuid() == 0 else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedError(
                f"rabbitmqctl -n {node.name} {' '.join(args)} failed: "
                f"{(result.stderr or result.stdout).strip()[-500:]}"
            )
        return result.stdout

    def leader_of(self, queue: str, vhost: str = "/") -> ClusterNode:
        """The node that leads a quorum queue or stream (from the management API)."""
        leader = self._queue_info(queue, vhost, "leader")
        return next(node for node in self.nodes if node.name == leader)

    def members_of(self, queue: str, vhost: str = "/") -> list[str]:
        """The nodes holding a replica of a quorum queue or stream."""
        return list(self._queue_info(queue, vhost, "members"))

    def _queue_info(self, queue: str, vhost: str, field: str) -> Any:
        # rabbitmqctl, not the management API: for a stream the API shows no members.
        for node in self.nodes:
            try:
                listed = json.loads(
                    self.ctl(
                        node,
                        "list_queues",
                        "-p",
                        vhost,
                        "name",
                        "leader",
                        "members",
                        "--formatter",
                        "json",
                        timeout=30,
                    )
                )
            except (EmbeddedError, subprocess.TimeoutExpired, ValueError):
                continue  # that node is down: ask the next
            for entry in listed:
                if entry.get("name") == queue and entry.get(field):
                    return entry[field]
        raise EmbeddedError(f"no node reports the {field} of {queue!r}")

    # --- internals -----------------------------------------------------------------

    def _prepare(self, node: ClusterNode) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        (node.directory / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}",
                    f"stream.listeners.tcp.default = 127.0.0.1:{node.stream_port}",
                    "stream.advertised_host = 127.0.0.1",
                    f"stream.advertised_port = {node.stream_port}",
                    f"management.tcp.port = {node.management_port}",
                    "management.tcp.ip = 127.0.0.1",
                    # The management API is polled by tests; stats every second, not five.
                    "collect_statistics_interval = 1000",
                    *self._peer_discovery(node),
                    "",
                ]
            )
        )
        (node.directory / "enabled_plugins").write_text(PLUGINS)
        if os.geteuid() == 0:
            account = pwd.getpwnam(RABBITMQ_USER)
            for path in [self.directory, *self.directory.rglob("*")]:
                os.chown(path, account.pw_uid, account.pw_gid)

    def _peer_discovery(self, node: ClusterNode) -> list[str]:
        """Node 1 forms the cluster; the others join it as they boot (retried every 0.5 s
        should node 1 not answer at once)."""
        first = self.nodes[0]
        if node == first:
            return []
        return [
            "cluster_formation.peer_discovery_backend = classic_config",
            f"cluster_formation.classic_config.nodes.1 = {first.name}",
            "cluster_formation.discovery_retry_interval = 500",
            "cluster_formation.discovery_retry_limit = 240",
        ]

    def _env(self, node: ClusterNode) -> dict[str, str]:
        home = pwd.getpwnam(RABBITMQ_USER).pw_dir if os.geteuid() == 0 else os.environ["HOME"]
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.directory / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.directory / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(node.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.directory / "log"),
            "RABBITMQ_PID_FILE": str(node.pid_file),
        }

    def _serving(self, node: ClusterNode, timeout: float) -> None:
        """Until the node serves: its AMQP listener opens last in a boot, after the stream
        and management listeners (asked of the ports, not of a ``rabbitmqctl`` per node:
        each such call starts an Erlang VM of its own)."""
        try:
            for port, what in (
                (node.amqp_port, "amqp"),
                (node.stream_port, "stream"),
                (node.management_port, "mgmt"),
            ):
                wait_for_port("127.0.0.1", port, timeout, f"node {node.name} {what}")
        except EmbeddedError as exc:
            log_file = node.directory / "log" / f"{node.name}.log"
            tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
            raise EmbeddedError(f"{exc}; the end of its log:\n{tail}") from None

    def _check_joined(self, timeout: float = 30) -> None:
        """Until node 1 lists every node as running. A node that found no peer in time boots
        standalone: such a "cluster" is refused."""
        deadline = time.monotonic() + timeout
        while True:
            listed = httpx.get(f"{self.management_url()}/api/nodes", auth=GUEST, timeout=30)
            listed.raise_for_status()
            running = {entry["name"] for entry in listed.json() if entry.get("running")}
            missing = [node.name for node in self.nodes if node.name not in running]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise EmbeddedError(f"nodes {missing} did not join {self.nodes[0].name}")
            time.sleep(0.2)

    def _launch(self, node: ClusterNode) -> None:
        subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self._env(node),
            user=RABBITMQ_USER if os.geteuid() == 0 else None,
            cwd=node.directory,
            capture_output=True,
            timeout=60,
            check=True,
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
