"""`relaydesk bench` stopped by SIGTERM stops what it started, as Ctrl-C does.

Python's default for SIGTERM ends the process at once: a bench killed that way (`timeout`,
a CI job's limit, an operator's `kill`) left `relaydesk up` with every service and its store,
the extra gateways (and a local cluster's nodes) running, with their ports and data. And a
start interrupted half-way was not undone at all: `up` and the cluster were started before
the steps whose cleanup stops them.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from tests.bench import QUICK_BENCH


def started_for(data_dir: str) -> list[psutil.Process]:
    """Every live process started with ``data_dir`` as RELAYDESK_DATA_DIR (`up` and its
    children, the extra gateways)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("RELAYDESK_DATA_DIR") == data_dir:
                found.append(process)
        except psutil.Error:
            continue
    return found


def test_sigterm_while_the_system_starts_stops_everything_the_bench_started(
    tmp_path: Path,
) -> None:
    bench = subprocess.Popen(
        [*QUICK_BENCH, "--gateways", "2", "--output", str(tmp_path / "report.json")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RELAYDESK_DATA_DIR": str(tmp_path / "data")},
    )
    data_dir = ""
    try:
        deadline = time.monotonic() + 60
        while not (data_dir := spawned_up_data_dir(bench)):
            assert bench.poll() is None, "the bench ended before it started the system"
            assert time.monotonic() < deadline, "the bench did not start `relaydesk up`"
            time.sleep(0.05)  # polling a condition under a deadline
        bench.send_signal(signal.SIGTERM)  # `up` is starting: nothing of it is ready yet
        _, stderr = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
        left = started_for(data_dir) if data_dir else []
        for process in left:  # never left behind for the rest of the suite
            process.kill()
    assert bench.returncode == 130, stderr[-3000:]
    assert "stopped by a signal" in stderr
    assert left == [], [p.cmdline() for p in left]
    assert not Path(data_dir).exists()  # the scratch data directory went with them


def spawned_up_data_dir(bench: subprocess.Popen[str]) -> str:
    """The data directory of the `relaydesk up` the bench spawned, once it has."""
    for child in psutil.Process(bench.pid).children():
        try:
            if child.cmdline()[-2:] == ["tools.cli", "up"]:
                return str(child.environ()["RELAYDESK_DATA_DIR"])
        except psutil.Error:
            continue
    return ""
