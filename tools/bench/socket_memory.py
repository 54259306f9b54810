"""Where a gateway's memory per idle socket goes: tracemalloc at thousands of sockets.

    python -m tools.bench.socket_memory --sockets 3000 [--frames 12] [--top 25]
    python -m tools.bench.socket_memory --rss --sockets 3000 --batches 2 [--deflate]

Starts the system (`relaydesk up` on a scratch vhost) and one more gateway traced with
``PYTHONTRACEMALLOC``; opens a few sockets to warm it up (caches, first-use imports), takes a
snapshot (SIGUSR2, relaydesk/memory_snapshots.py), opens ``--sockets`` more idle customer
sockets, takes another, and prints what grew, grouped by the allocating line and by the
first frame inside the project or a named library, in bytes per socket. The process's RSS
growth per socket is printed alongside: what tracemalloc does not see (C allocations of
uvloop and the kernel's socket buffers are not in it) is the difference.

``--rss`` measures without tracing, on `relaydesk up`'s own gateway: after the warm-up,
``--batches`` times ``--sockets`` more, the RSS growth per socket of each batch (the
figure of docs/performance.md). ``--deflate`` offers permessage-deflate, as browsers do.
"""

import argparse
import asyncio
import signal
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil

from relaydesk.runtime import run_loop
from tools.bench.capacity import open_idle_sockets
from tools.bench.processes import ProcessMeter
from tools.bench.sut import SystemUnderTest

WARM_UP_SOCKETS = 100


async def attribute(sockets: int, frames: int, top: int) -> str:
    sut = SystemUnderTest()
    await sut.start()  # `relaydesk up`; the gateway measured is the one added below
    try:
        # tracing every allocation makes the gateway start slowly, more so on a busy machine
        url, pid = await sut.add_gateway({"PYTHONTRACEMALLOC": str(frames)}, timeout=600)
        process = psutil.Process(pid)
        warm, _ = await open_idle_sockets(url, WARM_UP_SOCKETS)
        before_rss = process.memory_info().rss
        before = await _snapshot(pid, sut.data_dir)
        held, failed = await open_idle_sockets(url, sockets)
        after = await _snapshot(pid, sut.data_dir)
        rss_per_socket = (process.memory_info().rss - before_rss) / max(1, len(held))
        report = _report(before, after, len(held), frames, top)
        await asyncio.gather(*(s.close() for s in held + warm), return_exceptions=True)
        return (
            f"{len(held)} idle sockets held ({failed} failed); gateway RSS grew "
            f"{rss_per_socket / 1024:.1f} KiB per socket\n{report}"
        )
    finally:
        await sut.stop()


async def _snapshot(pid: int, data_dir: Path) -> tracemalloc.Snapshot:
    directory = data_dir / "memory"
    known = set(directory.glob("*.tracemalloc")) if directory.exists() else set()
    psutil.Process(pid).send_signal(signal.SIGUSR2)
    async with asyncio.timeout(60):
        while True:
            written = set(directory.glob("*.tracemalloc")) - known if directory.exists() else set()
            if written:
                path = written.pop()
                # the dump is complete once its size stops changing
                size = -1
                while path.stat().st_size != size:
                    size = path.stat().st_size
                    await asyncio.sleep(0.5)
                return tracemalloc.Snapshot.load(str(path))
            await asyncio.sleep(0.2)


async def rss_per_socket(sockets: int, batches: int, compression: str | None) -> str:
    sut = SystemUnderTest()
    running = await sut.start()
    held: list[Any] = []
    try:
        gateway = psutil.Process(ProcessMeter(running.process.pid).pid("gateway"))
        warm, _ = await open_idle_sockets(running.base_url, WARM_UP_SOCKETS)
        held += warm
        lines = []
        for batch in range(1, batches + 1):
            before = gateway.memory_info().rss
            opened, failed = await open_idle_sockets(
                running.base_url, sockets, compression=compression
            )
            held += opened
            after = gateway.memory_info().rss
            lines.append(
                f"batch {batch}: {len(opened)} idle sockets more ({failed} failed): gateway RSS"
                f" grew {(after - before) / 1024 / max(1, len(opened)):.1f} KiB per socket"
                f" ({after / 2**20:.0f} MiB)"
            )
            print(lines[-1], flush=True)
        return "\n".join(lines)
    finally:
        await asyncio.gather(*(s.close() for s in held), return_exceptions=True)
        await sut.stop()


def _report(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sockets: int, frames: int, top: int
) -> str:
    lines = []
    grown = after.compare_to(before, "traceback")
    total = sum(stat.size_diff for stat in grown)
    lines.append(
        f"tracemalloc sees {total / sockets / 1024:.1f} KiB per socket "
        f"(traced with {frames} frames)\n"
    )
    by_owner: dict[str, int] = defaultdict(int)
    for stat in grown:
        by_owner[_owner(stat.traceback)] += stat.size_diff
    lines.append("by the first frame in relaydesk's code or a library (bytes per socket):")
    for owner, size in sorted(by_owner.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"  {size / sockets:>9.0f}  {owner}")
    lines.append("\nby allocating line (bytes per socket):")
    by_line = after.compare_to(before, "lineno")
    for stat in by_line[:top]:
        frame = stat.traceback[0]
        lines.append(f"  {stat.size_diff / sockets:>9.0f}  {frame.filename}:{frame.lineno}")
    return "\n".join(lines)


def _owner(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame in our code, else the innermost frame's library."""
    for frame in traceback:  # innermost first
        name = frame.filename
        if "/site-packages/" not in name and "/lib/python3" not in name:
            return f"{name}:{frame.lineno}"
    frame = traceback[0]
    library = frame.filename.split("/site-packages/")[-1].split("/lib/python3.11/")[-1]
    return f"{library}:{frame.lineno}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=3000)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--rss", action="store_true", help="RSS growth only, no tracing")
    parser.add_argument("--batches", type=int, default=2, help="with --rss")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    args = parser.parse_args()
    compression = "deflate" if args.deflate else None
    if args.rss:
        run_loop(rss_per_socket(args.sockets, args.batches, compression))
        return
    print(run_loop(attribute(args.sockets, args.frames, args.top)))


if __name__ == "__main__":
    main()
