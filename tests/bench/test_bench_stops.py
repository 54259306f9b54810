"""`relaydesk bench` stopped by SIGTERM stops what it started, as Ctrl-C does.

Python's default for SIGTERM ends the process at once: a bench killed that way (`timeout`,
a CI job's limit, an operator's `kill`) left `relaydesk up` with every service and its store,
the extra gateways (and a local cluster's nodes) running, with their ports and data.
"""

import os
import signal
import subprocess
from pathlib import Path

import psutil

from tests.bench import QUICK_BENCH

SYSTEM_STARTED = "opening 40 conversations"


def test_sigterm_stops_the_system_the_bench_started(tmp_path: Path) -> None:
    started: list[psutil.Process] = []
    bench = subprocess.Popen(
        [
            *QUICK_BENCH,
            "--gateways",
            "2",
            "--conversations",
            "40",
            "--output",
            str(tmp_path / "report.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RELAYDESK_DATA_DIR": str(tmp_path / "data")},
    )
    try:
        assert bench.stdout is not None
        printed = []
        for line in bench.stdout:
            printed.append(line)
            if SYSTEM_STARTED in line:
                break
        assert SYSTEM_STARTED in printed[-1], "".join(printed)[-3000:]
        started = psutil.Process(bench.pid).children(recursive=True)
        names = {" ".join(p.cmdline()[-2:]) for p in started}
        assert {"tools.cli up", "tools.cli gateway"} <= names, names  # up's and the extra one
        data_dirs = {p.environ().get("RELAYDESK_DATA_DIR") for p in started} - {None}

        bench.send_signal(signal.SIGTERM)
        _, stderr = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    _, alive = psutil.wait_procs(started, timeout=30)
    for leftover in alive:  # not left behind for the rest of the suite, whatever the outcome
        leftover.kill()
    assert bench.returncode == 130, stderr[-3000:]
    assert "stopped by a signal" in stderr
    assert alive == [], [p.cmdline() for p in alive]
    assert data_dirs and not any(Path(d).exists() for d in data_dirs if d)
