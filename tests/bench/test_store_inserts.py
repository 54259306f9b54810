"""`python -m tools.bench.store_inserts` measures every side, each in a child of its own."""

import re
import subprocess
import sys


def test_every_side_is_measured_and_reported() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.bench.store_inserts", "--events", "1000", "--rounds", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for side in ("library", "written_out", "checks_once"):
        [line] = [line for line in done.stdout.splitlines() if line.startswith(f"  {side} ")]
        median = float(re.split(r"\s+", line.strip())[1])
        assert median > 0, line
