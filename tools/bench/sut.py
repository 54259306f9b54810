"""The system under test: `relaydesk up` on a scratch vhost, data directory and ports."""

import asyncio
import os
import random
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tools.embedded import ensure_rabbitmq, free_port
from tools.vhosts import RabbitVhosts

READY_LINE = "relaydesk is up."


@dataclass
class RunningSut:
    base_url: str
    amqp_url: str
    mongo_url: str
    owner_password: str
    process: asyncio.subprocess.Process
    output: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/ws"


class SystemUnderTest:
    """Starts and stops the whole system; nothing it does touches a real deployment."""

    def __init__(
        self,
        amqp_base: str = "amqp://guest:guest@127.0.0.1:5672",
        management_url: str = "http://127.0.0.1:15672",
    ) -> None:
        self._vhosts = RabbitVhosts(amqp_base, management_url, prefix="bench")
        self._vhost: str | None = None
        self._data = tempfile.TemporaryDirectory(prefix="relaydesk-bench-")
        self.running: RunningSut | None = None

    async def start(
        self, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> RunningSut:
        ensure_rabbitmq()
        self._vhost = self._vhosts.create()
        amqp_url = self._vhosts.url_for(self._vhost)
        port = free_port()
        env = {
            **os.environ,
            "RELAYDESK_AMQP_URL": amqp_url,
            "RELAYDESK_DATA_DIR": self._data.name,
            "RELAYDESK_GATEWAY_PORT": str(port),
            "RELAYDESK_CONNECTORS_PORT": str(free_port()),
            "RELAYDESK_HEALTH_PORT_BASE": str(random.randint(20000, 29000)),
            # Thousands of simulated clients share this machine's one address: the
            # per-address limits (docs/security.md) would stop the load at its first step.
            "RELAYDESK_WS_MAX_PER_ADDRESS": "1000000",
            "RELAYDESK_WS_CONNECT_RATE_PER_MIN": "6000000",
            "RELAYDESK_WS_CONNECT_BURST": "1000000",
            "RELAYDESK_HTTP_PENDING_PER_ADDRESS": "1000000",
            **(extra_env or {}),
        }
        env.pop("MONGO_URL", None)
        env.pop("RELAYDESK_MONGO_URL", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.cli",
            "up",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        lines: list[str] = []
        assert process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    raise RuntimeError(
                        "relaydesk up exited before it was ready:\n" + "".join(lines[-30:])
                    )
                lines.append(raw.decode(errors="replace"))
                if "Demo sign-in" in lines[-1]:
                    break
        mongo = next(
            (
                line.rsplit(" at ", 1)[1].strip()
                for line in lines
                if "embedded MongoDB-protocol server" in line
            ),
            "",
        )
        password = next(
            line.rsplit("password ", 1)[1].strip() for line in lines if "Demo sign-in" in line
        )
        asyncio.get_running_loop().create_task(self._drain(process))
        self.running = RunningSut(
            f"http://127.0.0.1:{port}", amqp_url, mongo, password, process, lines
        )
        return self.running

    @staticmethod
    async def _drain(process: asyncio.subprocess.Process) -> None:
        # Keep reading so the children never block on a full pipe.
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    async def stop(self) -> None:
        if self.running and self.running.process.returncode is None:
            os.killpg(self.running.process.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(self.running.process.wait(), 60)
            except TimeoutError:
                os.killpg(self.running.process.pid, signal.SIGKILL)
        if self._vhost:
            self._vhosts.delete(self._vhost)
            self._vhost = None
        self._data.cleanup()

    @property
    def data_dir(self) -> Path:
        return Path(self._data.name)
