"""Embedded defaults for one machine: the system RabbitMQ and the SecantusDB server.

``relaydesk up`` and the test fixtures both use these, so a newcomer needs no Docker.
"""

import fcntl
import importlib.util
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


class EmbeddedError(RuntimeError):
    """An embedded dependency is missing or would not start; the message says what to do."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Ports handed out for listeners stay below the kernel's ephemeral range (32768+ on Linux):
# a port picked there, free when checked and released until its server binds it, may be
# taken meanwhile as the local end of some outgoing connection ("address already in use").
LISTEN_PORTS = range(20000, 32000)


class PortReservations:
    """Ports handed out to listen on later, reserved on this machine until this process ends.

    A port checked free is released again until its server binds it, seconds later for a
    whole ``relaydesk up``; meanwhile another process checking the same port finds it free
    too (two test workers did, and the second ``up``'s gateway could not listen). Each
    handed-out range is a POSIX record lock on the bytes at its port numbers in one file per
    user: other processes skip it, the kernel drops it when this process exits (no stale
    reservation after a crash), and a forked child does not inherit it. The same process
    would be granted its own lock again, hence the set.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: int | None = None
        self._pid = 0
        self._mine: set[int] = set()
        self._guard = threading.Lock()

    def reserve(self, ports: range) -> bool:
        """True if ``ports`` are now reserved by this process; False if any is taken."""
        with self._guard:
            lock_file = self._lock_file()
            if self._mine.intersection(ports):
                return False
            if lock_file is not None:
                try:
                    fcntl.lockf(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB, len(ports), ports.start)
                except OSError:  # another process holds one of them
                    return False
            self._mine.update(ports)
            return True

    def release(self, ports: range) -> None:
        """Give back ``ports`` reserved by this process (a cluster stopped, say)."""
        with self._guard:
            lock_file = self._lock_file()
            if lock_file is not None:
                fcntl.lockf(lock_file, fcntl.LOCK_UN, len(ports), ports.start)
            self._mine.difference_update(ports)

    def held_here(self, ports: range) -> bool:
        """True if this process holds any of ``ports``."""
        with self._guard:
            return bool(self._mine.intersection(ports)) and self._pid == os.getpid()

    def _lock_file(self) -> int | None:
        """The lock file, opened once per process; None where it cannot be (reservations
        are then this process's own only)."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._mine = set()  # a forked child holds none of its parent's locks
            try:
                self._file = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                log.warning("port_reservations_unshared", path=str(self._path), error=str(exc))
                self._file = None
        return self._file


PORTS = PortReservations(Path(tempfile.gettempdir()) / f"relaydesk-ports-{os.getuid()}.lock")


def free_ports(count: int = 1) -> int:
    """The first of ``count`` consecutive ports free to listen on, below the ephemeral range,
    reserved for this process (:class:`PortReservations`)."""
    for _ in range(200):
        base = random.randrange(LISTEN_PORTS.start, LISTEN_PORTS.stop - count)
        ports = range(base, base + count)
        if not bindable(ports) or not PORTS.reserve(ports):
            continue
        return base
    raise EmbeddedError(f"no {count} consecutive free ports in {LISTEN_PORTS}")


def bindable(ports: range) -> bool:
    sockets = []
    try:
        for port in ports:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise EmbeddedError(f"{what} did not open {host}:{port} within {timeout:.0f}s")


def ensure_rabbitmq(host: str = "127.0.0.1", port: int = 5672) -> None:
    """Start the system's RabbitMQ if it is installed and not running; enable the plugins we use."""
    if port_open(host, port):
        return
    if shutil.which("rabbitmq-server") is None:
        raise EmbeddedError(
            "RabbitMQ is not installed: run scripts/bootstrap.sh (apt-get install rabbitmq-server)"
        )
    log.info("rabbitmq_starting")
    subprocess.run(["rabbitmq-server", "-detached"], check=False, capture_output=True)
    wait_for_port(host, port, 60, "RabbitMQ")
    subprocess.run(
        ["rabbitmqctl", "await_startup", "--timeout", "60"], check=False, capture_output=True
    )
    subprocess.run(
        ["rabbitmq-plugins", "enable", "rabbitmq_stream", "rabbitmq_management"],
        check=False,
        capture_output=True,
    )


# The module the embedded store runs as (process tables find it by this name).
STORE_MODULE = "tools.embedded_store"


class EmbeddedMongo:
    """A SecantusDB server (MongoDB wire protocol over WiredTiger) as a child process.

    ``replica_set``: advertise a one-member replica set and keep an oplog (SecantusDB's
    own default), for a comparison only (``python -m tools.bench.archive_writes --oplog``).
    """

    def __init__(
        self, storage_path: str, port: int | None = None, *, replica_set: bool = False
    ) -> None:
        self.storage_path = storage_path
        self.port = port or free_port()
        self.replica_set = replica_set
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def argv(self) -> list[str]:
        """The server's command line (``relaydesk up`` runs it as a supervised child)."""
        if importlib.util.find_spec("secantus") is None:
            raise EmbeddedError(
                "SecantusDB is not installed: pip install 'relaydesk[embedded]' or set MONGO_URL"
            )
        if self.storage_path != ":memory:":
            os.makedirs(self.storage_path, exist_ok=True)
        return [
            # SecantusDB's own server (``secantusd-py``'s arguments) with two fixes to its
            # query engine (catalog reads, ``$and`` planning) and WiredTiger's packing
            # compiled per format: tools/embedded_store.py.
            sys.executable,
            "-m",
            STORE_MODULE,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--storage-path",
            self.storage_path,
            "--log-level",
            "WARNING",
            # Standalone, no oplog: SecantusDB's default advertises a one-member replica set
            # and writes an oplog entry (the document again, or an update's diff) per write,
            # for change streams. relaydesk uses none (nor transactions), and those entries
            # were a fifth of the store's CPU per archived chat message (docs/performance.md).
            # Durability is the journal's either way: a ``j: true`` write is synced.
            *([] if self.replica_set else ["--standalone"]),
            # Ours, not SecantusDB's: the server stops itself (cleanly, as on SIGTERM) once
            # this process is no longer its parent, so a killed starter (a pytest run,
            # `relaydesk up`) leaves no store holding the port and data directory.
            "--parent-pid",
            str(os.getpid()),
        ]

    def start(self, timeout: float = 60) -> "EmbeddedMongo":
        self.process = subprocess.Popen(
            self.argv(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port("127.0.0.1", self.port, timeout, "SecantusDB")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
