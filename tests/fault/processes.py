"""Services as separate OS processes (``relaydesk <service>``) that can be SIGKILLed.

An in-process service shares the test's event loop, so "killed" can only be simulated;
a child process dies like a crashed host: no ``finally``, no acks, no checkpoint flush,
its broker connections reset.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from relaydesk.health import SERVICE_ORDER
from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.cli_process import ForkedCommand, run_relaydesk, start_relaydesk
from tests.keys import secret_env
from tools.embedded import free_port, free_ports


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a ``relaydesk`` child needs to join the test's vhost and database."""
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
        # every service listens on base + n now: ports no outgoing connection may hold
        "RELAYDESK_HEALTH_PORT_BASE": str(free_ports(len(SERVICE_ORDER))),
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
        self.process: ForkedCommand | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.command}-{self.starts}.log"

    async def start(self) -> "ServiceProcess":
        self.starts += 1
        # Returns once the child is forked (no waiting on the loop); the test controls it with
        # signals and poll(), which asyncio's Process would make async for no gain.
        self.process = start_relaydesk(
            [self.command], service_env(self.settings, **self.env), self.log_path
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


PUBLIC_URL = "https://support.example"  # both gateways sit behind one public name, as with nginx


def gateway_process(settings: Settings) -> tuple[ForkedCommand, str]:
    """A real gateway process (`relaydesk gateway`) that can be SIGKILLed like a crashed host."""
    port = free_port()
    env = service_env(settings, RELAYDESK_GATEWAY_PORT=str(port), RELAYDESK_PUBLIC_URL=PUBLIC_URL)
    return start_relaydesk(["gateway"], env), f"http://127.0.0.1:{port}"


async def healthy(base_url: str) -> bool:
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as http:
            return (await http.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class GatewayPair:
    """Two gateway processes behind one public name; clients list ``ws_urls`` in that order."""

    doomed: ForkedCommand  # the one the clients reach first
    survivor: ForkedCommand
    doomed_url: str
    survivor_url: str

    @property
    def ws_urls(self) -> list[str]:
        return [url.replace("http", "ws") + "/ws" for url in (self.doomed_url, self.survivor_url)]

    def kill_doomed(self) -> float:
        """SIGKILL the first gateway (its host dies: no close frames, sockets reset); returns the
        ``time.monotonic()`` of the signal."""
        killed_at = time.monotonic()
        self.doomed.send_signal(signal.SIGKILL)
        self.doomed.wait(10)
        return killed_at


@contextlib.asynccontextmanager
async def gateway_pair(settings: Settings) -> AsyncIterator[GatewayPair]:
    """Two healthy ``relaydesk gateway`` processes; both killed on the way out."""
    doomed, doomed_url = gateway_process(settings)
    survivor, survivor_url = gateway_process(settings)
    try:
        for url in (doomed_url, survivor_url):
            await eventually(lambda url=url: healthy(url), timeout=60, what=f"gateway {url}")
        yield GatewayPair(doomed, survivor, doomed_url, survivor_url)
    finally:
        for process in (doomed, survivor):
            if process.poll() is None:
                process.kill()
                process.wait(10)


async def relaydesk_tool(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``relaydesk replay`` / ``audit`` as an operator would run them against this system."""
    return await asyncio.to_thread(run_relaydesk, args, service_env(settings), timeout=120)
