"""The system under test: `relaydesk up` on a scratch vhost, data directory and ports."""

import asyncio
import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from relaydesk.health import SERVICE_ORDER
from tools.cluster import LocalRabbitCluster
from tools.embedded import ensure_rabbitmq, free_port, free_ports
from tools.up_secrets import up_secrets
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
    gateway_urls: list[str] = field(default_factory=list)  # base_url first, then the extra ones
    stream_url: str | None = None
    health_port_base: int = 0  # RELAYDESK_HEALTH_PORT_BASE of `up`'s services
    extra_gateway_pids: list[int] = field(default_factory=list)  # beside `up`'s, not its children
    broker_pids: list[int] = field(default_factory=list)  # a local cluster's; empty: the system's

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/ws"


class SystemUnderTest:
    """Starts and stops the whole system; nothing it does touches a real deployment.

    Args:
        cluster: a running local RabbitMQ cluster to use instead of the system broker.
        gateways: how many gateway processes (``relaydesk up``'s own, plus ``relaydesk
            gateway`` processes on the same vhost, data and secrets).
    """

    def __init__(
        self,
        amqp_base: str = "amqp://guest:guest@127.0.0.1:5672",
        management_url: str = "http://127.0.0.1:15672",
        *,
        cluster: LocalRabbitCluster | None = None,
        gateways: int = 1,
    ) -> None:
        self._cluster = cluster
        if cluster is not None:
            first = cluster.nodes[0]
            amqp_base = f"amqp://guest:guest@127.0.0.1:{first.amqp_port}"
            management_url = cluster.management_url()
        self._vhosts = RabbitVhosts(amqp_base, management_url, prefix="bench")
        self._vhost: str | None = None
        self._gateways = gateways
        self._extra_gateways: list[asyncio.subprocess.Process] = []
        self._env: dict[str, str] = {}
        self._data = tempfile.TemporaryDirectory(prefix="relaydesk-bench-")
        self._up: asyncio.subprocess.Process | None = None  # from its spawn: stop() ends it
        self.running: RunningSut | None = None

    async def start(
        self, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> RunningSut:
        ensure_rabbitmq()
        self._vhosts.remove_abandoned()
        self._vhost = self._vhosts.create()
        amqp_url = self._vhosts.url_for(self._vhost)
        stream_url = None
        if self._cluster is not None:
            amqp_url = self._cluster.amqp_url(self._vhost)
            stream_url = self._cluster.stream_url(self._vhost)
        port = free_port()
        env = {
            **os.environ,
            **({"RELAYDESK_STREAM_URL": stream_url} if stream_url else {}),
            "RELAYDESK_AMQP_URL": amqp_url,
            "RELAYDESK_DATA_DIR": self._data.name,
            "RELAYDESK_GATEWAY_PORT": str(port),
            "RELAYDESK_CONNECTORS_PORT": str(free_port()),
            "RELAYDESK_HEALTH_PORT_BASE": str(free_ports(len(SERVICE_ORDER))),
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
        self._up = process = await asyncio.create_subprocess_exec(
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
        base_url = f"http://127.0.0.1:{port}"
        self.running = RunningSut(
            base_url,
            amqp_url,
            mongo,
            password,
            process,
            lines,
            gateway_urls=[base_url],
            stream_url=stream_url,
            health_port_base=int(env["RELAYDESK_HEALTH_PORT_BASE"]),
            broker_pids=self._cluster.pids() if self._cluster is not None else [],
        )
        self._env = env
        for _ in range(self._gateways - 1):
            url, pid = await self.add_gateway()
            self.running.gateway_urls.append(url)
            self.running.extra_gateway_pids.append(pid)
        return self.running

    async def add_gateway(
        self, extra_env: dict[str, str] | None = None, timeout: float = 120
    ) -> tuple[str, int]:
        """One more ``relaydesk gateway`` on the same vhost, store and secrets as ``up``'s;
        its base URL and process id, once it answers."""
        assert self.running is not None, "start() first"
        env, mongo_url = self._env, self.running.mongo_url
        port = free_port()
        log = self.data_dir / f"gateway-{port}.log"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tools.cli",
            "gateway",
            env={
                **env,
                **up_secrets(self._data.name, env),
                "MONGO_URL": mongo_url,
                "RELAYDESK_GATEWAY_PORT": str(port),
                # Both gateways serve one system, as behind a load balancer: the console's
                # Origin is the system's address (up's gateway), which each must take as its own.
                "RELAYDESK_PUBLIC_URL": env.get("RELAYDESK_PUBLIC_URL", self.running.base_url),
                "RELAYDESK_HEALTH_PORT_BASE": str(free_ports(len(SERVICE_ORDER))),
                **(extra_env or {}),
            },
            stdout=log.open("wb"),
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        self._extra_gateways.append(process)
        url = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=2) as http:
            while True:
                if process.returncode is not None:
                    raise RuntimeError(
                        f"an extra gateway exited with {process.returncode}:\n"
                        + log.read_text(errors="replace")[-2000:]
                    )
                try:
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        return url, process.pid
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)  # polling the gateway's health until it answers

    @staticmethod
    async def _drain(process: asyncio.subprocess.Process) -> None:
        # Keep reading so the children never block on a full pipe.
        assert process.stdout is not None
        while await process.stdout.readline():
            pass

    async def stop(self) -> None:
        for gateway in self._extra_gateways:
            if gateway.returncode is None:
                gateway.kill()
                await gateway.wait()
        up, self._up = self._up, None
        if up is not None and up.returncode is None:  # started, ready or not
            os.killpg(up.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(up.wait(), 60)
            except TimeoutError:
                os.killpg(up.pid, signal.SIGKILL)
        if self._vhost:
            self._vhosts.delete(self._vhost)
            self._vhost = None
        self._data.cleanup()

    @property
    def data_dir(self) -> Path:
        return Path(self._data.name)
