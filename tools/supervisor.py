"""``relaydesk up``: the whole system on one machine, each service its own process.

Starts RabbitMQ (system package) if needed and the embedded MongoDB-protocol server when
no MONGO_URL is set, then every service, with the secrets it generated on the first start
(``tools.up_secrets``; the environment wins); prefixes their output; waits until each
child's ``/readyz`` answers 200 (the store: a ping), whatever the log level; prints where
to open the widget demo, the console and every service's health endpoints. From then on it
supervises (tools/supervision.py): a child that dies is restarted with backoff and the
others keep serving; a crash loop stops everything. Ctrl-C (or SIGTERM) stops children in
reverse order.

Exit codes: 0 stopped on request; 1 a child crash-looped or the system was not ready, with
nothing still starting moving on (a catch-up of the log) for
``RELAYDESK_UP_READY_TIMEOUT_S``; 2 configuration or a dependency (an unreadable secrets
file, a setting a service refused, RabbitMQ or SecantusDB missing).
"""

import asyncio
import contextlib
import os
import signal
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import structlog
from pymongo import AsyncMongoClient

from relaydesk.health import SERVICE_ORDER, health_port
from relaydesk.logging import configure_logging
from relaydesk.settings import Settings
from tools.demo import ensure_demo_workspace
from tools.embedded import EmbeddedError, EmbeddedMongo, ensure_rabbitmq
from tools.supervision import Child, Crashloop, ReadyProbe, RestartPolicy, stop_all
from tools.up_secrets import SecretsFileError, secrets_path, up_secrets

log = structlog.get_logger(__name__)

SERVICES = ("history", "agent", "billing", "connectors", "gateway")  # start order
# On one machine every process competes for the same cores. The gateway and the routing
# owner sit on the path a customer waits on; the archive, billing, the connectors' log
# follower and the embedded store only have to keep up. Lowering their priority keeps the
# chat path's tail latency down when the machine is busy, and costs them nothing when it
# is not (docs/performance.md).
BACKGROUND = frozenset({"history", "billing", "connectors", "store"})

EXIT_STOPPED, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def _say(line: str) -> None:
    print(f"[relaydesk] {line}", flush=True)


def _probe_host(settings: Settings) -> str:
    """Where to reach the health endpoints from here (a wildcard bind answers on loopback)."""
    return "127.0.0.1" if settings.health_host in ("0.0.0.0", "::", "") else settings.health_host


class StartProgress:
    """What the services still starting say of their catch-up of the log (``catching_up`` in
    their /readyz, relaydesk/bus/catch_up.py), and when any of it last moved on.

    A fixed time to be ready stopped a system whose log had grown long (660,000 entries:
    billing and connectors were still folding, steadily, at 120 s). The start is given up
    only once nothing still starting has moved on for that long.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.catching_up: dict[str, dict[str, dict[str, Any]]] = {}
        self.moved_at = clock()

    def seen(self, child: str, catching_up: dict[str, dict[str, Any]]) -> None:
        before = self.catching_up.get(child, {})
        for reader, now in catching_up.items():
            if now.get("position", -1) > before.get(reader, {}).get("position", -1):
                self.moved_at = self._clock()
        self.catching_up[child] = catching_up

    def still_for(self) -> float:
        """Seconds since anything still starting moved on."""
        return self._clock() - self.moved_at

    def describe(self, child: str) -> str:
        """``billing (log 412,000 of 661,000)``: the child and how far its catch-up is."""
        parts = []
        for reader, at in self.catching_up.get(child, {}).items():
            head = at.get("head")
            if at.get("position", -1) < 0 and head is None:
                continue  # nothing folded, nothing known: "log 0" would read as an empty log
            done = f"{at.get('position', -1) + 1:,}"
            if head is not None:
                done += f" of {head + 1:,}"
            parts.append(done if reader == child else f"{reader} {done}")
        return f"{child} (log {', '.join(parts)})" if parts else child


def _readyz(http: httpx.AsyncClient, url: str, name: str, progress: StartProgress) -> ReadyProbe:
    async def probe() -> bool:
        try:
            answer = await http.get(url)
        except httpx.HTTPError:
            return False
        if answer.status_code == 200:
            return True
        with contextlib.suppress(ValueError, AttributeError):
            if catching_up := answer.json().get("catching_up"):
                progress.seen(name, catching_up)
        return False

    return probe


def _store_answers(client: AsyncMongoClient[dict[str, object]]) -> ReadyProbe:
    async def probe() -> bool:
        try:
            await client.admin.command("ping")
        except Exception:  # noqa: BLE001 - any failure is "not ready yet"
            return False
        return True

    return probe


def _policy(settings: Settings) -> RestartPolicy:
    return RestartPolicy(
        backoff_s=settings.up_restart_backoff_s,
        backoff_max_s=settings.up_restart_backoff_max_s,
        limit=settings.up_restart_limit,
        window_s=settings.up_restart_window_s,
    )


def _health_lines(settings: Settings, services: tuple[str, ...]) -> str:
    host = _probe_host(settings)
    rows = "".join(
        f"    {name:<11} http://{host}:{health_port(settings, name)}/readyz\n"
        for name in SERVICE_ORDER
        if name in services
    )
    return f"  Health (/healthz, /readyz, /metrics on each):\n{rows}"


async def up(settings: Settings, services: tuple[str, ...] = SERVICES) -> int:
    configure_logging(level=settings.log_level, fmt=settings.log_format, service="up")
    env = dict(os.environ)
    try:
        generated = up_secrets(settings.data_dir, env)
    except SecretsFileError as exc:
        _say(str(exc))
        return EXIT_CONFIG
    if generated:
        _say(f"secrets from {secrets_path(settings.data_dir)}")
    env.update(generated)  # the children read them from their environment
    try:
        broker = urllib.parse.urlsplit(settings.amqp_url)
        if broker.hostname in ("127.0.0.1", "localhost", "::1"):  # a remote one is not ours
            ensure_rabbitmq(broker.hostname, broker.port or 5672)
        store = (
            None if settings.mongo_url else EmbeddedMongo(str(Path(settings.data_dir) / "mongo"))
        )
        store_argv = store.argv() if store else []
    except EmbeddedError as exc:
        _say(str(exc))
        return EXIT_CONFIG
    host = _probe_host(settings)
    progress = StartProgress()
    async with httpx.AsyncClient(timeout=3) as http:
        children: list[Child] = []
        mongo_client: AsyncMongoClient[dict[str, object]] | None = None
        if store is not None:
            env["MONGO_URL"] = store.url
            mongo_client = AsyncMongoClient(store.url, serverSelectionTimeoutMS=1000)
            children.append(
                Child(
                    "store",
                    store_argv,
                    env,
                    _store_answers(mongo_client),
                    _policy(settings),
                    settings.background_nice,
                )
            )
            _say(f"embedded MongoDB-protocol server (SecantusDB) at {store.url}")
        for name in services:
            url = f"http://{host}:{health_port(settings, name)}/readyz"
            children.append(
                Child(
                    name,
                    [sys.executable, "-m", "tools.cli", name],
                    env,
                    _readyz(http, url, name, progress),
                    _policy(settings),
                    settings.background_nice if name in BACKGROUND else 0,
                )
            )
        try:
            return await _supervise(settings, services, env, children, progress)
        finally:
            # The services first: they flush to the store as they stop (routing's snapshot).
            await stop_all([c for c in children if c.name != "store"])
            await stop_all([c for c in children if c.name == "store"])
            if mongo_client is not None:
                await mongo_client.close()


async def _supervise(
    settings: Settings,
    services: tuple[str, ...],
    env: dict[str, str],
    children: list[Child],
    progress: StartProgress,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = [c for c in children if c.name == "store"]
    for child in store:  # the services connect to it: up before they start
        await child.start()
        try:
            await asyncio.wait_for(child.wait_ready(), settings.up_ready_timeout_s)
        except TimeoutError:
            pass
        if not child.ready.is_set():
            _say("the embedded store did not start (is another `up` using its data directory?)")
            return EXIT_FAILED
    for child in children:
        if child not in store:
            await child.start()
    stopped = asyncio.create_task(stop.wait())
    watchers = [asyncio.create_task(child.run()) for child in children]
    # First readiness of each service; after a restart during start, run() polls it again.
    probes = [asyncio.create_task(c.wait_ready()) for c in children if c not in store]
    all_ready = asyncio.create_task(_all_ready(children, settings.up_ready_timeout_s, progress))
    waiting = asyncio.create_task(
        _say_who_is_not_ready(children, settings.up_waiting_every_s, progress)
    )
    try:
        await asyncio.wait([all_ready, stopped, *watchers], return_when=asyncio.FIRST_COMPLETED)
        if stopped.done():
            return EXIT_STOPPED
        failed = _failure(watchers)
        if failed is not None:
            return failed
        try:
            all_ready.result()
        except TimeoutError:
            late = [progress.describe(c.name) for c in children if not c.ready.is_set()]
            _say(
                f"not ready, and nothing moved on for {settings.up_ready_timeout_s:g}s:"
                f" {', '.join(late)}"
            )
            return EXIT_FAILED
        base = settings.gateway_url()
        demo = await ensure_demo_workspace(env, settings.data_dir) if "agent" in services else ""
        print(
            f"\n  relaydesk is up.\n  Widget demo:   {base}/demo\n"
            f"  Agent console: {base}/console?tenant=demo\n"
            f"  Admin:         {base}/admin?tenant=demo\n{demo}\n"
            f"{_health_lines(settings, services)}\n  Ctrl-C stops everything.\n",
            flush=True,
        )
        await asyncio.wait([stopped, *watchers], return_when=asyncio.FIRST_COMPLETED)
        if stopped.done():
            return EXIT_STOPPED
        return _failure(watchers) or EXIT_FAILED
    finally:
        tasks = [all_ready, waiting, stopped, *probes, *watchers]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _all_ready(
    children: list[Child], timeout_s: float, progress: StartProgress, poll_s: float = 0.5
) -> None:
    """Every child ready once; TimeoutError when those still starting have not moved on (a
    catch-up of the log advancing) for ``timeout_s``. Polled: the children's readiness is
    itself polled (their /readyz), and a long start's deadline moves with its progress."""
    while not all(child.ready.is_set() for child in children):
        if progress.still_for() > timeout_s:
            raise TimeoutError
        await asyncio.sleep(poll_s)


async def _say_who_is_not_ready(
    children: list[Child], every_s: float, progress: StartProgress
) -> None:
    """Every ``every_s`` until all are ready, the services still starting: a start that
    folds a long log takes tens of seconds, and silence looked like a hang."""
    started = time.monotonic()
    hint = "; a service catching up a long log takes a while"  # said once
    while True:
        await asyncio.sleep(every_s)
        late = [progress.describe(child.name) for child in children if not child.ready.is_set()]
        if not late:
            return
        elapsed = time.monotonic() - started
        _say(f"waiting for {', '.join(late)} to answer ready ({elapsed:.0f}s{hint})")
        hint = ""


def _failure(watchers: list["asyncio.Task[None]"]) -> int | None:
    """The exit code for the first watcher that gave up, after saying why; None if none did."""
    for watcher in watchers:
        if watcher.done() and not watcher.cancelled():
            error = watcher.exception()
            if isinstance(error, Crashloop):
                _say(f"stopping everything: {error}")
                return error.exit_code
            if error is not None:
                raise error
    return None
