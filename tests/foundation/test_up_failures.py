"""`relaydesk up` gives up on a crash loop with the reason and a non-zero exit, and stops
everything on Ctrl-C with exit 0; either way no process of it is left."""

import asyncio
import signal
import socket
from pathlib import Path

from relaydesk.health import SERVICE_ORDER
from tests.admin.helpers import eventually
from tests.servers import RabbitVhosts
from tests.up import Up, supervisor_events


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
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", up.health_base + SERVICE_ORDER.index("billing")))
        taken.listen()
        up.start()
        try:
            assert up.process is not None
            code = await asyncio.to_thread(up.process.wait, 150)
            output = up.output
            assert code == 1, output[-3000:]
            assert "stopping everything: billing exited 2 times within 300s" in output
            exits = supervisor_events(output, "child_exited", "billing")
            assert [e["restarts"] for e in exits] == [1], exits
            assert all(e["exit_code"] != 0 for e in exits), exits
            loop = supervisor_events(output, "child_crash_loop")
            assert [e["child"] for e in loop] == ["billing"], loop
            await eventually(lambda: not up.ours(), timeout=60, what="every child to stop")
        finally:
            up.stop()
            vhosts.delete(vhost)


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
