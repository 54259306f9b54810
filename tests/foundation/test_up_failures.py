"""`relaydesk up` gives up on a crash loop with the reason and a non-zero exit, and stops
everything on Ctrl-C with exit 0; either way no process of it is left."""

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from relaydesk.health import SERVICE_ORDER
from tests.admin.helpers import eventually
from tests.servers import RabbitVhosts
from tests.up import Up, supervisor_events


@contextlib.asynccontextmanager
async def ended_with_a_port_taken(
    up: Up, port: int, vhosts: RabbitVhosts, vhost: str
) -> AsyncIterator[tuple[int, str]]:
    """``up`` started while another socket listens on ``port``: its exit code and output once
    it has exited; afterwards no process of it is left, nor its vhost."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        up.start()
        try:
            assert up.process is not None
            code = await asyncio.to_thread(up.process.wait, 150)
            yield code, up.output
            await eventually(lambda: not up.ours(), timeout=60, what="every child to stop")
        finally:
            up.stop()
            vhosts.delete(vhost)


async def test_a_crash_looping_child_stops_everything_with_the_reason(
    vhosts: RabbitVhosts, tmp_path: Path
) -> None:
    vhost = vhosts.create()
    up = Up(
        vhosts.url_for(vhost),
        tmp_path,
        RELAYDESK_UP_RESTART_LIMIT="2",
        RELAYDESK_UP_RESTART_WINDOW_S="300",
        RELAYDESK_UP_RESTART_BACKOFF_S="0.1",
    )
    # The billing service's health port is taken: each start of it fails at once.
    billing_health = up.health_base + SERVICE_ORDER.index("billing")
    async with ended_with_a_port_taken(up, billing_health, vhosts, vhost) as (code, output):
        assert code == 1, output[-3000:]
        assert "stopping everything: billing exited 2 times within 300s" in output
        exits = supervisor_events(output, "child_exited", "billing")
        assert [e["restarts"] for e in exits] == [1], exits
        assert all(e["exit_code"] != 0 for e in exits), exits
        loop = supervisor_events(output, "child_crash_loop")
        assert [e["child"] for e in loop] == ["billing"], loop


async def test_a_gateway_port_in_use_stops_everything_at_once_saying_so(
    vhosts: RabbitVhosts, tmp_path: Path
) -> None:
    """The gateway was restarted 5 times, each with a traceback, then `up` exited 1 with
    "gateway exited 5 times … (last: exit code 3)", never naming the busy port. Now the
    gateway refuses it as configuration (exit 2), which restarting cannot mend."""
    vhost = vhosts.create()
    up = Up(vhosts.url_for(vhost), tmp_path, RELAYDESK_UP_RESTART_BACKOFF_S="0.1")
    refusal = (
        f"relaydesk gateway: cannot listen on 127.0.0.1:{up.gateway_port}: address already in"
        " use: another process listens there; stop it or set RELAYDESK_GATEWAY_PORT to a free"
        " port"
    )
    async with ended_with_a_port_taken(up, up.gateway_port, vhosts, vhost) as (code, output):
        assert code == 2, output[-3000:]
        gateway = [line for line in output.splitlines() if line.startswith("[   gateway]")]
        assert not any("Traceback" in line for line in gateway), gateway
        assert f"[   gateway] {refusal}" in gateway, output[-3000:]
        assert (
            "[relaydesk] stopping everything: gateway refused its configuration"
            f" (exit code 2): {refusal}\n"
        ) in output, output[-3000:]
        assert supervisor_events(output, "child_exited", "gateway") == []


async def test_ctrl_c_stops_every_child_and_exits_0(vhosts: RabbitVhosts, tmp_path: Path) -> None:
    vhost = vhosts.create()
    up = Up(vhosts.url_for(vhost), tmp_path).start()
    try:
        assert up.process is not None
        # Every child started (the store and the five services), then Ctrl-C.
        await eventually(lambda: len(up.children()) == 6, timeout=60, what="six children")
        up.process.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(up.process.wait, 90)
        assert code == 0, up.output[-3000:]
        assert not up.ours()
    finally:
        up.stop()
        vhosts.delete(vhost)
