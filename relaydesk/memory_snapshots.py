"""On request, a tracemalloc snapshot of a running service, for attributing its memory.

Start the process with ``PYTHONTRACEMALLOC=<frames>`` (tracing costs CPU and memory, so it is
never on by default) and send it SIGUSR2: the snapshot is written to
``<RELAYDESK_DATA_DIR>/memory/<service>-<pid>-<n>.tracemalloc``, to be compared with
``tracemalloc.Snapshot.load`` (``python -m tools.bench.socket_memory`` does it for the
gateway's idle sockets). Without tracing, the signal logs that it is off and does nothing.
"""

import asyncio
import itertools
import os
import signal
import tracemalloc
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def dump_on_signal(loop: asyncio.AbstractEventLoop, service: str, data_dir: str) -> None:
    """Install the SIGUSR2 handler on ``loop``."""
    directory = Path(data_dir) / "memory"
    numbers = itertools.count(1)

    def dump() -> None:
        if not tracemalloc.is_tracing():
            log.warning("memory_snapshot_off", hint="start the process with PYTHONTRACEMALLOC=25")
            return
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{service}-{os.getpid()}-{next(numbers)}.tracemalloc"
        tracemalloc.take_snapshot().dump(str(path))
        log.info("memory_snapshot_written", path=str(path))

    loop.add_signal_handler(signal.SIGUSR2, dump)
