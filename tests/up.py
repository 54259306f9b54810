"""A whole ``relaydesk up`` as the tests run it: its own vhost on the session's broker, its
own data directory (embedded store), ports of its own; its output in a file.

Its processes are found by the data directory in their environment, so a test can tell
that none is left without confusing them with another test's ``relaydesk`` processes.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from gateway.auth.tokens import TokenService
from relaydesk.health import SERVICE_ORDER
from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tools.embedded import STORE_MODULE, free_port, free_ports

READY_LINE = "relaydesk is up."
URLS_END = "Ctrl-C stops everything."


class Up:
    """One ``relaydesk up`` child process."""

    def __init__(self, amqp_url: str, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "up.log"
        self.gateway_port = free_port()
        self.health_base = free_ports(len(SERVICE_ORDER))
        self.env = {
            **os.environ,
            "RELAYDESK_AMQP_URL": amqp_url,
            "RELAYDESK_DATA_DIR": str(data_dir),
            "RELAYDESK_GATEWAY_PORT": str(self.gateway_port),
            "RELAYDESK_CONNECTORS_PORT": str(free_port()),
            "RELAYDESK_HEALTH_PORT_BASE": str(self.health_base),
            **env,
        }
        for name in ("MONGO_URL", "RELAYDESK_MONGO_URL", "RELAYDESK_MONGO_DB"):
            self.env.pop(name, None)  # `up` runs its embedded store
        for secret in ("RELAYDESK_JWT_SECRET", "RELAYDESK_VISITOR_SECRET", "RELAYDESK_SECRETS_KEY"):
            self.env.pop(secret, None)  # `up` provides them
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> "Up":
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tools.cli", "up"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_up(self, timeout: float = 150) -> None:
        def printed() -> bool:
            assert self.process is not None and self.process.poll() is None, self.output[-3000:]
            return URLS_END in self.output

        await eventually(printed, timeout=timeout, what="`relaydesk up` to print its URLs")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws"

    def health_url(self, service: str, path: str = "/readyz") -> str:
        return f"http://127.0.0.1:{self.health_base + SERVICE_ORDER.index(service)}{path}"

    def store_url(self) -> str:
        found = re.search(r"\(SecantusDB\) at (\S+)", self.output)
        assert found, self.output[-3000:]
        return found.group(1)

    def settings(self) -> Settings:
        """Settings reaching this system, as a tool or test client of it would use them."""
        secrets = json.loads((self.data_dir / "secrets.json").read_text())
        return Settings(
            amqp_url=self.env["RELAYDESK_AMQP_URL"],
            mongo_url=self.store_url(),
            mongo_db="relaydesk",
            gateway_port=self.gateway_port,
            request_timeout_s=float(self.env.get("RELAYDESK_REQUEST_TIMEOUT_S", "5")),
            jwt_secret=secrets["RELAYDESK_JWT_SECRET"],
            visitor_secret=secrets["RELAYDESK_VISITOR_SECRET"],
            secrets_key=secrets["RELAYDESK_SECRETS_KEY"],
        )

    def children(self) -> dict[str, psutil.Process]:
        """The running children by name (``store`` for the embedded store)."""
        assert self.process is not None
        found = {}
        for child in psutil.Process(self.process.pid).children():
            try:
                command = child.cmdline()
            except psutil.Error:
                continue
            if not command:  # exited, not yet reaped by `up`
                continue
            name = "store" if STORE_MODULE in command else command[-1]
            found[name] = child
        return found

    def ours(self) -> list[psutil.Process]:
        """Every live process started for this ``up`` (its data directory is in their
        environment), ``up`` itself included."""
        marker = f"RELAYDESK_DATA_DIR={self.data_dir}"
        alive = []
        for process in psutil.process_iter():
            try:
                if process.status() == psutil.STATUS_ZOMBIE:
                    continue
                environ = process.environ()
            except psutil.Error:
                continue
            if f"RELAYDESK_DATA_DIR={environ.get('RELAYDESK_DATA_DIR')}" == marker:
                alive.append(process)
        return alive

    async def ready(self, service: str, http: httpx.AsyncClient) -> bool:
        try:
            return (await http.get(self.health_url(service))).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for process in self.ours():  # whatever a failed test left behind
            process.kill()


class UpGateway:
    def __init__(self, up: Up) -> None:
        self.base_url, self.ws_url = up.base_url, up.ws_url


class UpSystem:
    """What the conversation helpers of tests/fault need of a system, for one ``up``."""

    def __init__(self, up: Up) -> None:
        self.settings = up.settings()
        self.gateway = UpGateway(up)

    def visitor_token(self, tenant: str, visitor_id: str) -> str:
        return TokenService(self.settings).issue_visitor(tenant, visitor_id)


def supervisor_events(output: str, event: str, child: str | None = None) -> list[dict[str, object]]:
    """``up``'s own structured log lines named ``event`` (JSON, one a line), about ``child``."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and f'"{event}"' in line:
            record = json.loads(line)
            if record.get("event") == event and child in (None, record.get("child")):
                found.append(record)
    return found
