"""``relaydesk <args>`` as a process of its own, forked from one that has imported the CLI.

A test of the command line wants what an operator gets: a process with its own environment,
its own stdout and stderr, and an exit code. A fresh interpreter for that spent ~1.3 s of
CPU importing ``tools.cli`` (pydantic, the AMQP and stream clients, the store's driver…)
before the command did anything, and the suite started ~50 of them on two cores. Here
multiprocessing's forkserver imports the CLI once per test worker and forks a child per
call: the same ``tools.cli.main`` as ``python -m tools.cli``, in a separate process, without
the import.

Nothing the CLI imports reads the environment at import time (settings are read when a
command runs), so a child given ``env`` behaves as a process started with it.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

COMMAND_LINE = "tools.cli"

_context: Any = None


def _forkserver() -> Any:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([COMMAND_LINE])
        _context = context
    return _context


def _child(args: list[str], env: dict[str, str], cwd: str | None, out: str, err: str) -> None:
    """Runs in the forked child: the process's environment, working directory and standard
    streams become the ones asked for, then the command line runs as ``python -m tools.cli``."""
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    for path, fd in ((out, 1), (err, 2)):
        opened = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = [sys.executable, *args]
    from tools.cli import main

    code = main(args)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)


def run_relaydesk(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    timeout: float,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run([python, -m, tools.cli, *args], env=env, capture_output=True,
    text=True, timeout=timeout)``, from the forkserver."""
    with tempfile.TemporaryDirectory(prefix="relaydesk-cli-") as scratch:
        out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
        command = ForkedCommand(args, env, out, err, cwd=cwd)
        try:
            code = command.wait(timeout)
        except subprocess.TimeoutExpired:
            command.kill()
            command.wait()
            raise subprocess.TimeoutExpired(
                command.args, timeout, out.read_text(), err.read_text()
            ) from None
        return subprocess.CompletedProcess(
            [sys.executable, "-m", COMMAND_LINE, *args], code, out.read_text(), err.read_text()
        )


class ForkedCommand:
    """A running ``relaydesk <args>`` child, driven like ``subprocess.Popen``: ``pid``,
    ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``. Its stdout and stderr go to
    the files given (None: discarded; the same file twice is ``stderr=STDOUT``). (Its
    ``os.environ`` is the one given; its ``/proc/<pid>/environ`` is the forkserver's, so
    ``tests/up.py``, which finds ``up``'s processes by their environment, still starts ``up``
    with Popen.)"""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        stdout: Path | None,
        stderr: Path | None,
        *,
        cwd: str | Path | None = None,
    ) -> None:
        self.args = [COMMAND_LINE, *args]
        sinks = []
        for path in (stdout, stderr):
            if path is not None:
                path.touch()
            sinks.append(os.devnull if path is None else str(path))
        directory = None if cwd is None else str(cwd)
        self._child = _forkserver().Process(
            target=_child, args=(list(args), dict(env), directory, *sinks)
        )
        self._child.start()

    @property
    def pid(self) -> int:
        assert self._child.pid is not None
        return int(self._child.pid)

    @property
    def returncode(self) -> int | None:
        code = self._child.exitcode
        return None if code is None else int(code)

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._child.join(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return self.returncode

    def send_signal(self, signal_number: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal_number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start_relaydesk(
    args: Sequence[str], env: Mapping[str, str], output: Path | None = None
) -> ForkedCommand:
    """``subprocess.Popen([python, -m, tools.cli, *args], env=env, stdout=output,
    stderr=STDOUT)`` (``output`` None: both discarded), from the forkserver."""
    return ForkedCommand(args, env, output, output)
