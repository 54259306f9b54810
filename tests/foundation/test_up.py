"""`relaydesk up` brings the whole system up on embedded defaults and stops cleanly."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tools.embedded import free_port

READY_LINE = "relaydesk is up."


def test_up_starts_every_service_prints_urls_and_stops_on_ctrl_c(
    amqp_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": amqp_url,
        "RELAYDESK_DATA_DIR": str(tmp_path),
        "RELAYDESK_GATEWAY_PORT": str(port),
        "RELAYDESK_CONNECTORS_PORT": str(free_port()),
    }
    env.pop("MONGO_URL", None)
    for secret in ("RELAYDESK_JWT_SECRET", "RELAYDESK_VISITOR_SECRET", "RELAYDESK_SECRETS_KEY"):
        env.pop(secret, None)  # `up` provides them
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if READY_LINE in line:
                break
        output = "".join(lines)
        assert READY_LINE in output, output[-3000:]
        # The URL block follows the ready line; services' log lines may interleave with it.
        while (
            time.monotonic() < deadline and lines[-1] and "Ctrl-C stops everything" not in lines[-1]
        ):
            lines.append(process.stdout.readline())
        output = "".join(lines)
        assert (
            f"http://127.0.0.1:{port}/demo" in output
            and f"http://127.0.0.1:{port}/console" in output
        )
        assert "embedded MongoDB-protocol server" in output
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        # The printed demo sign-in works in the console, and the pages it names are served.
        demo_line = next((line for line in lines if "Demo sign-in" in line), None)
        assert demo_line is not None, output[-3000:]
        password = demo_line.rsplit("password ", 1)[1].strip()
        login = httpx.post(
            f"http://127.0.0.1:{port}/api/auth/login",
            json={"tenant": "demo", "email": "owner@demo.local", "password": password},
            timeout=10,
        )
        assert login.status_code == 200, login.text
        for page in ("demo", "console", "admin", "static/widget.js"):
            assert httpx.get(f"http://127.0.0.1:{port}/{page}", timeout=10).status_code == 200, page
        # No secret ships with the code: `up` generated the services' own, readable by us only.
        secrets_file = tmp_path / "secrets.json"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        assert set(json.loads(secrets_file.read_text())) == {
            "RELAYDESK_JWT_SECRET",
            "RELAYDESK_VISITOR_SECRET",
            "RELAYDESK_SECRETS_KEY",
            "RELAYDESK_AUDIT_SIGNING_KEY",
        }
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0
