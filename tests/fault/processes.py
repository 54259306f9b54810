"""Services as separate OS processes (``relaydesk <service>``) that can be SIGKILLed.

An in-process service shares the test's event loop, so "killed" can only be simulated;
a child process dies like a crashed host: no ``finally``, no acks, no checkpoint flush,
its broker connections reset.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.keys import secret_env
from tools.embedded import free_port


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a ``relaydesk`` child needs to join the test's vhost and database."""
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
        "RELAYDESK_HEALTH_PORT_BASE": str(free_port()),
        "RELAYDESK_LOG_FORMAT": "json",
        **secret_env(settings),
        **extra,
    }
    if settings.stream_url:  # a container's mapped stream port
        env["RELAYDESK_STREAM_URL"] = settings.stream_url
    return env


class ServiceProcess:
    """One ``relaydesk <command>`` child; each start logs to its own file (readiness per start)."""

    def __init__(
        self, command: str, settings: Settings, log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.command, self.settings, self.log_dir = command, settings, log_dir
        self.env = env or {}  # more RELAYDESK_* variables for the child
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.command}-{self.starts}.log"

    async def start(self) -> "ServiceProcess":
        self.starts += 1
        with self.log_path.open("wb") as log:
            # Popen returns once the child is forked (no waiting on the loop); the test controls it
            # with signals and poll(), which asyncio's Process would make async for no gain.
            self.process = subprocess.Popen(  # noqa: ASYNC220
                [sys.executable, "-m", "tools.cli", self.command],
                env=service_env(self.settings, **self.env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await eventually(
            self._ready,
            timeout=60,
            what=f"relaydesk {self.command} (start {self.starts}) to log service_ready",
        )
        return self

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, (
            f"relaydesk {self.command} exited: {self.log_path.read_text()[-2000:]}"
        )
        return b"service_ready" in self.log_path.read_bytes()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, wait: bool = True) -> None:
        """SIGKILL: the process gets no chance to ack, flush or close anything.

        ``wait=False`` only sends the signal, for a caller that must not block its event loop.
        """
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        if wait:
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
