"""A service started before its broker waits for it (relaydesk/dependencies.py); one whose
broker refuses its credentials or vhost stops at once with exit code 2 and one line.

The broker appears later on a port where nothing listened: a forwarder to the test's broker
opens there (the service cannot tell it from a node that finished booting; the shared
broker itself is never stopped). The process is ``relaydesk billing``: no store to wait for.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from relaydesk.bus.endpoint import StreamEndpoint
from relaydesk.dependencies import Misconfigured, broker_answers
from relaydesk.health import SERVICE_ORDER
from relaydesk.runtime import EXIT_CONFIG
from relaydesk.settings import Settings
from tests.admin.helpers import eventually
from tests.cli_process import ForkedCommand, start_relaydesk
from tests.fault.processes import service_env
from tests.servers import RabbitVhosts
from tools.embedded import free_port


@contextlib.asynccontextmanager
async def forwarding(port: int, to: tuple[str, int]) -> AsyncIterator[None]:
    """Listen on ``port`` and pass every connection through to ``to``, both ways."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    open_writers: set[asyncio.StreamWriter] = set()

    async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*to)
        except OSError:
            writer.close()
            return
        open_writers.update((writer, upstream_writer))
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(connect, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        for writer in open_writers:
            writer.close()
        await server.wait_closed()


def moved(url: str, scheme: str, port: int) -> str:
    """``url`` (user, password, vhost kept) at 127.0.0.1:``port``."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return f"{scheme}://{credentials}@127.0.0.1:{port}{parts.path}"


def billing(settings: Settings, log: Path, **env: str) -> tuple[ForkedCommand, str]:
    """``relaydesk billing`` as a child; its health URL."""
    environment = service_env(settings, **env)
    environment.pop("RELAYDESK_STREAM_URL", None)
    environment.update(env)
    base = int(environment["RELAYDESK_HEALTH_PORT_BASE"])
    process = start_relaydesk(["billing"], environment, log)
    return process, f"http://127.0.0.1:{base + SERVICE_ORDER.index('billing')}"


def events(log: Path, name: str) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == name:
                found.append(entry)
    return found


async def test_a_service_started_before_its_broker_waits_and_starts_once_it_answers(
    settings: Settings, tmp_path: Path
) -> None:
    amqp_port, stream_port = free_port(), free_port()  # nothing listens on them yet
    stream = StreamEndpoint.from_urls(settings.amqp_url, settings.stream_url)
    amqp = urlsplit(settings.amqp_url)
    log = tmp_path / "billing.log"
    process, health = billing(
        settings,
        log,
        RELAYDESK_AMQP_URL=moved(settings.amqp_url, "amqp", amqp_port),
        RELAYDESK_STREAM_URL=moved(settings.amqp_url, "rabbitmq-stream", stream_port),
    )
    try:
        async with httpx.AsyncClient(timeout=5) as http:

            async def waiting() -> dict[str, object] | None:
                assert process.poll() is None, log.read_text()[-3000:]
                with contextlib.suppress(httpx.TransportError):
                    answer = await http.get(f"{health}/readyz")
                    body: dict[str, object] = answer.json()
                    assert answer.status_code == 503, body
                    attempt = body.get("attempt")
                    return body if isinstance(attempt, int) and attempt >= 2 else None
                return None

            # Not ready, alive, and saying what it waits for, attempt after attempt.
            body = await eventually(waiting, timeout=30, what="billing waiting for its broker")
            assert body["status"] == "starting" and body["waiting_for"] == "broker", body
            assert (await http.get(f"{health}/healthz")).status_code == 200
            tries = events(log, "waiting_for_broker")
            assert [t["attempt"] for t in tries[:2]] == [1, 2], tries
            assert all(t["service"] == "billing" and "retry_in_s" in t for t in tries)
            assert "Connection refused" in str(tries[0]["error"]), tries[0]
            assert amqp.password and amqp.password not in log.read_text()

            # The broker comes: the service starts and is ready, without a restart.
            async with (
                forwarding(amqp_port, (amqp.hostname or "127.0.0.1", amqp.port or 5672)),
                forwarding(stream_port, (stream.host, stream.port)),
            ):

                async def ready() -> bool:
                    assert process.poll() is None, log.read_text()[-3000:]
                    return (await http.get(f"{health}/readyz")).status_code == 200

                await eventually(ready, timeout=60, what="billing ready once the broker answers")
                assert (
                    events(log, "broker_answers")[0]["attempts"]
                    == len(events(log, "waiting_for_broker")) + 1
                )
                process.terminate()
                assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def refused_urls(vhosts: RabbitVhosts) -> dict[str, str]:
    """What RabbitMQ says no to (no vhost is made for it), by the reason a service gives."""
    missing = vhosts.url_for("no-such-vhost")
    parts = urlsplit(missing)
    host = parts.netloc.rpartition("@")[2]
    wrong = parts._replace(netloc=f"{parts.username}:not-the-password@{host}")
    return {
        "RabbitMQ refused the user": wrong.geturl(),
        "RabbitMQ refused the vhost 'no-such-vhost'": missing,
    }


async def test_refused_credentials_and_a_missing_vhost_are_not_waited_for(
    vhosts: RabbitVhosts,
) -> None:
    for says, url in refused_urls(vhosts).items():
        with pytest.raises(Misconfigured) as refused:
            await broker_answers(Settings(amqp_url=url), "billing")
        assert str(refused.value).startswith(says), refused.value
        assert "not-the-password" not in str(refused.value)


async def test_a_service_the_broker_refuses_exits_2_at_once_with_one_line(
    vhosts: RabbitVhosts, tmp_path: Path
) -> None:
    says, url = next(iter(refused_urls(vhosts).items()))
    log = tmp_path / "billing.log"
    process, _ = billing(Settings(amqp_url=url), log)
    try:
        code = await asyncio.to_thread(process.wait, 60)
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text(errors="replace")
    assert code == EXIT_CONFIG, output[-3000:]
    assert output.strip().splitlines()[-1].startswith(f"relaydesk billing: {says}"), output
    assert "Traceback" not in output and "not-the-password" not in output
    assert not events(log, "waiting_for_broker")  # refused at once, not waited for
