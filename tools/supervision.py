"""Children of ``relaydesk up``: started, watched, restarted with backoff, stopped.

A child is one OS process (a service, or the embedded store). When it exits without being
asked to, it is started again after a delay that doubles with each restart inside the
crash-loop window (``RELAYDESK_UP_RESTART_BACKOFF_S`` up to ``..._BACKOFF_MAX_S``); the
other children keep running. ``RELAYDESK_UP_RESTART_LIMIT`` restarts of one child within
``RELAYDESK_UP_RESTART_WINDOW_S`` is a crash loop: the supervisor gives up on the whole
system. A child that refuses its configuration (exit 2, ``EXIT_CONFIG``) is never
restarted: the same configuration would be refused again.

No orphans: on Linux each child is started with ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, so
the kernel stops it when ``up`` dies however it dies (SIGKILL included); a child whose
parent died while it was being started stops itself at once. Elsewhere children are only
stopped when ``up`` exits normally, except the embedded store, which watches its parent
itself (``--parent-pid``, tools/embedded_store.py).
"""

import asyncio
import ctypes
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog

from relaydesk.runtime import EXIT_CONFIG

log = structlog.get_logger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_TIMEOUT_S = 15.0

ReadyProbe = Callable[[], Awaitable[bool]]


@dataclass
class RestartPolicy:
    """When to restart a child, and when to give up (pure: times are passed in)."""

    backoff_s: float
    backoff_max_s: float
    limit: int
    window_s: float
    _recent: deque[float] = field(default_factory=deque)

    def record(self, now: float) -> float | None:
        """A restart at ``now``: the delay before it, or None when it is a crash loop."""
        self._recent.append(now)
        while self._recent and self._recent[0] <= now - self.window_s:
            self._recent.popleft()
        if len(self._recent) >= self.limit:
            return None
        return min(self.backoff_max_s, self.backoff_s * 2 ** (len(self._recent) - 1))


def describe_exit(code: int) -> dict[str, object]:
    """``{"exit_code": n}`` or ``{"signal": "SIGKILL"}`` (asyncio reports a signal as -n)."""
    if code < 0:
        try:
            return {"signal": signal.Signals(-code).name}
        except ValueError:
            return {"signal": str(-code)}
    return {"exit_code": code}


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel send SIGTERM to the child when ``up`` dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # looked up before fork, not in the child
    parent = os.getpid()

    def in_child() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # up died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return in_child


def lower_priority(pid: int, niceness: int) -> None:
    """Lower process ``pid``'s CPU priority by ``niceness``, in the way the scheduler weighs it.

    Its nice value alone is not enough on Linux with autogroup scheduling (on by default in
    Debian's and Ubuntu's kernels: /proc/sys/kernel/sched_autogroup_enabled): the CPU is
    shared between autogroups, one per session, before the nice values of the processes
    inside one are looked at, and every child of ``up`` has a session of its own. So the
    embedded store at nice 5 had the gateway's share. The autogroup's own nice value
    (``/proc/<pid>/autogroup``, sched(7)) weighs the child's session against the others.
    Raising either is allowed to an unprivileged owner; where it is not, the child runs at
    normal priority. The process's nice value is raised from the one it inherited (``up``
    itself may run niced), the new session's autogroup starts at 0.
    """
    try:
        inherited = os.getpriority(os.PRIO_PROCESS, pid)
        os.setpriority(os.PRIO_PROCESS, pid, min(inherited + niceness, 19))
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/autogroup", "w") as autogroup:
            autogroup.write(str(niceness))
    except OSError:  # not Linux, or a kernel without autogroup scheduling
        pass


class Crashloop(Exception):
    """The system cannot be kept running; ``exit_code`` is what ``up`` exits with."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason)
        self.exit_code = exit_code


class Child:
    """One supervised process. ``run()`` keeps it running until ``stop()`` or a crash loop.

    Args:
        name: how logs and the output prefix name it.
        argv: the command.
        env: its environment.
        ready: answers whether the (current) process is ready, e.g. its ``/readyz`` is 200.
        policy: restart policy (one per child: a crash loop is one child's).
        niceness: priority drop after start (0: none).
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        ready: ReadyProbe,
        policy: RestartPolicy,
        niceness: int = 0,
    ) -> None:
        self.name, self.argv, self.env = name, argv, env
        self._ready_probe, self._policy, self._niceness = ready, policy, niceness
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.ready = asyncio.Event()  # the current process answered ready
        self.last_line = ""  # what it printed last: a refusal's one line, when it exits 2
        self._stopping = False
        # Held here: the loop keeps tasks only weakly.
        self._pump: asyncio.Task[None] | None = None
        self._announcer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # cuts a backoff short when stopping

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        self.ready.clear()
        self.last_line = ""
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_die_with_parent(),
            # Its own session: Ctrl-C in the terminal reaches `up` only, which stops the
            # children in order (the store after the services that write to it).
            start_new_session=True,
        )
        if self._niceness > 0:
            lower_priority(self.process.pid, self._niceness)
        assert self.process.stdout is not None
        self._pump = asyncio.create_task(self._print(self.process.stdout))

    async def _print(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            print(f"[{self.name:>10}] {text}", flush=True)
            self.last_line = text

    async def wait_ready(self, poll_s: float = 0.2) -> None:
        """Until the current process answers ready (the caller bounds the time)."""
        process = self.process
        while process is self.process and process is not None and process.returncode is None:
            if await self._ready_probe():
                self.ready.set()
                return
            await asyncio.sleep(poll_s)

    async def run(self) -> None:
        """Watch the process; restart it when it dies; raise Crashloop when giving up."""
        while True:
            assert self.process is not None
            code = await self.process.wait()
            if self._pump is not None:  # its last lines first: they often say why
                await asyncio.wait([self._pump], timeout=2)
            if self._stopping:
                return
            how = describe_exit(code)
            if code == EXIT_CONFIG:
                log.error("child_refused_configuration", child=self.name, **how)
                # its one line says what to fix: said again last, not lost in the output above
                said = f": {self.last_line}" if self.last_line else ""
                raise Crashloop(
                    f"{self.name} refused its configuration (exit code {EXIT_CONFIG}){said}", 2
                )
            delay = self._policy.record(time.monotonic())
            if delay is None:
                log.error(
                    "child_crash_loop",
                    child=self.name,
                    **how,
                    restarts=self.restarts,
                    limit=self._policy.limit,
                    window_s=self._policy.window_s,
                )
                raise Crashloop(
                    f"{self.name} exited {self._policy.limit} times within "
                    f"{self._policy.window_s:g}s (last: {_said(how)})",
                    1,
                )
            self.restarts += 1
            log.warning(
                "child_exited", child=self.name, **how, restarts=self.restarts, restart_in_s=delay
            )
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass
            if self._stopping:
                return
            await self.start()
            self._announcer = asyncio.create_task(self._announce_ready())

    async def _announce_ready(self) -> None:
        await self.wait_ready()
        if self.ready.is_set():
            log.info("child_ready", child=self.name, restarts=self.restarts)

    def terminate(self) -> None:
        self._stopping = True
        self._wake.set()
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)

    async def stopped(self) -> None:
        """After ``terminate()``: wait for the process, SIGKILL it after ``STOP_TIMEOUT_S``."""
        if self.process is None:
            return
        try:
            await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._pump is not None:
            await asyncio.wait([self._pump], timeout=2)


def _said(how: dict[str, object]) -> str:
    return f"signal {how['signal']}" if "signal" in how else f"exit code {how['exit_code']}"


async def stop_all(children: list[Child]) -> None:
    """SIGTERM to each (reverse start order), then wait for all of them."""
    for child in reversed(children):
        child.terminate()
    for child in reversed(children):
        await child.stopped()
