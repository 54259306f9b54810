"""``relaydesk up``: the whole system on one machine, each service its own process.

Starts RabbitMQ (system package) if needed and the embedded MongoDB-protocol server when
no MONGO_URL is set, then every service; prefixes their logs; waits until each printed
``service_ready``; prints where to open the widget demo and the console; on Ctrl-C stops
children in reverse order.
"""

import asyncio
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

from relaydesk.settings import Settings
from tools.demo import ensure_demo_workspace
from tools.embedded import EmbeddedMongo, ensure_rabbitmq

SERVICES = ("history", "agent", "billing", "connectors", "gateway")
READY_MARK = '"service_ready"'
# On one machine every process competes for the same cores. The gateway and the routing
# owner sit on the path a customer waits on; the archive, billing, the connectors' log
# follower and the embedded store only have to keep up. Lowering their priority keeps the
# chat path's tail latency down when the machine is busy, and costs them nothing when it
# is not (docs/performance.md).
BACKGROUND = frozenset({"history", "billing", "connectors"})


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None  # held here: the loop keeps tasks only weakly


async def _pump(child: Child, stream: asyncio.StreamReader) -> None:
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        if READY_MARK in text:
            child.ready.set()
        print(f"[{child.name:>10}] {text}", flush=True)


async def _spawn(name: str, env: dict[str, str], niceness: int) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        name,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    if name in BACKGROUND:
        _lower_priority(process.pid, niceness)
    child = Child(name, process)
    assert process.stdout is not None
    child.pump = asyncio.create_task(_pump(child, process.stdout))
    return child


def _lower_priority(pid: int, niceness: int) -> None:
    if niceness > 0:
        try:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
        except OSError:  # not permitted here: run at normal priority
            pass


async def _stop(children: list[Child]) -> None:
    for child in reversed(children):
        if child.process.returncode is None:
            child.process.send_signal(signal.SIGTERM)
    for child in reversed(children):
        try:
            await asyncio.wait_for(child.process.wait(), 15)
        except TimeoutError:
            child.process.kill()


async def up(
    settings: Settings, services: tuple[str, ...] = SERVICES, ready_timeout: float = 90
) -> int:
    env = dict(os.environ)
    ensure_rabbitmq()
    mongo: EmbeddedMongo | None = None
    if not settings.mongo_url:
        mongo = EmbeddedMongo(str(Path(settings.data_dir) / "mongo")).start()
        if mongo.process is not None:
            _lower_priority(mongo.process.pid, settings.background_nice)
        env["MONGO_URL"] = mongo.url
        print(
            f"[relaydesk] embedded MongoDB-protocol server (SecantusDB) at {mongo.url}", flush=True
        )
    children = [await _spawn(name, env, settings.background_nice) for name in services]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in children)), ready_timeout)
    except TimeoutError:
        late = [c.name for c in children if not c.ready.is_set()]
        print(f"[relaydesk] not ready after {ready_timeout:.0f}s: {', '.join(late)}", flush=True)
        await _stop(children)
        if mongo:
            mongo.stop()
        return 1
    base = settings.gateway_url()
    demo = await ensure_demo_workspace(env, settings.data_dir) if "agent" in services else ""
    print(
        f"\n  relaydesk is up.\n  Widget demo:   {base}/demo\n"
        f"  Agent console: {base}/console?tenant=demo\n"
        f"  Admin:         {base}/admin?tenant=demo\n{demo}\n  Ctrl-C stops everything.\n",
        flush=True,
    )
    exited = [asyncio.create_task(c.process.wait()) for c in children]
    await asyncio.wait(
        [asyncio.create_task(stop.wait()), *exited], return_when=asyncio.FIRST_COMPLETED
    )
    await _stop(children)
    if mongo:
        mongo.stop()
    return 0
