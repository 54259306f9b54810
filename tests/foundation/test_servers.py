"""Which RabbitMQ the tests use: the local broker by default, a container only if Docker answers."""

import subprocess
import urllib.parse
import uuid

import pytest

from tests import servers
from tools.vhosts import RabbitVhosts


def test_without_docker_the_local_broker_serves_on_its_default_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RELAYDESK_TEST_AMQP_URL", raising=False)
    monkeypatch.setattr(servers, "docker_engine_available", lambda: False)
    server = servers.RabbitServer()
    assert server.vhosts.base_url == "amqp://guest:guest@127.0.0.1:5672"
    vhost = server.vhosts.create()
    try:
        # No stream override: readers keep the AMQP host on 5552, exactly as before.
        assert servers.stream_override(server.vhosts, vhost) == {}
    finally:
        server.vhosts.delete(vhost)


def test_when_docker_answers_a_container_is_started_instead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RELAYDESK_TEST_AMQP_URL", raising=False)
    monkeypatch.setattr(servers, "docker_engine_available", lambda: True)
    mapped = RabbitVhosts(
        "amqp://guest:guest@127.0.0.1:32771",
        "http://127.0.0.1:32772",
        stream_base_url="rabbitmq-stream://guest:guest@127.0.0.1:32773",
    )
    monkeypatch.setattr(servers.RabbitServer, "_start_container", lambda self: mapped)
    monkeypatch.setattr(
        servers, "ensure_rabbitmq", lambda: pytest.fail("the local broker must not be touched")
    )
    server = servers.RabbitServer()
    assert server.vhosts is mapped
    assert servers.stream_override(server.vhosts, "test-a b") == {
        "stream_url": "rabbitmq-stream://guest:guest@127.0.0.1:32773/test-a%20b"
    }


def test_the_container_enables_the_plugins_the_deployment_enables() -> None:
    assert (
        "rabbitmq_stream" in servers.PLUGINS_FILE.read_text()
        and "rabbitmq_management" in servers.PLUGINS_FILE.read_text()
    )


def test_vhosts_left_by_a_dead_run_are_removed_and_live_ones_kept(vhosts: RabbitVhosts) -> None:
    # A run that crashed before deleting its vhosts: its process id names a process that is
    # gone (a child that has exited and been reaped).
    dead_pid = _reaped_pid()
    abandoned = f"{vhosts.prefix}-{dead_pid}-{uuid.uuid4().hex[:12]}"
    quoted = urllib.parse.quote(abandoned, safe="")
    vhosts.http.put(f"{vhosts.management_url}/api/vhosts/{quoted}").raise_for_status()
    live = vhosts.create()  # this process's: alive
    try:
        assert vhosts.remove_abandoned() >= 1
        names = {v["name"] for v in vhosts.http.get(f"{vhosts.management_url}/api/vhosts").json()}
        assert abandoned not in names and live in names
    finally:
        vhosts.delete(live)
        vhosts.delete(abandoned)


def _reaped_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
