"""`relaydesk bench --quick` runs every step against the real system and loses nothing.

Timing targets are not asserted here (they live in the benchmark report); this checks
that the harness measures what it claims: every message sent arrives once and is archived.
"""

import json
import os
import subprocess
from pathlib import Path

from tests.bench import QUICK_BENCH


def test_quick_bench_runs_every_step_and_loses_nothing(tmp_path: Path) -> None:
    output = tmp_path / "report.json"
    done = subprocess.run(
        [
            *QUICK_BENCH,
            # smaller than --quick's own numbers: every step still runs, in less of the suite
            "--seconds",
            "2",
            "--idle-sockets",
            "100",
            "--archive-events",
            "500",
            # the fleet's sockets spread over up's gateway and a second one, as `--cluster`
            # runs do, two agents so that one is on each (the second gateway refused the
            # console's Origin, up's address: 403)
            "--gateways",
            "2",
            "--conversations",
            "40",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RELAYDESK_DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(output.read_text())
    measured = report["rounds"][0]["relaydesk"]
    assert measured["sent"] == 400 and measured["received"] == 400
    assert measured["lost"] == 0 and measured["duplicates"] == 0
    assert measured["customer_to_agent"]["count"] == 400
    assert report["history"]["archived"] == report["history"]["sent"] > 400
    for baseline in ("ws_relay", "stream_echo"):
        assert (
            report["rounds"][0][baseline]["received"]
            == report["rounds"][0][baseline]["sent"]
            == 400
        )
    assert report["idle_sockets"]["held"] == report["idle_sockets"]["requested"] > 0
    assert report["archive"]["events"] == 500 and report["archive"]["archived_per_s"] > 0
    assert report["replay_stream"]["events"] >= report["history"]["sent"]
    assert report["replay_archive"]["events"] >= report["history"]["sent"]
    assert "gateway" in report["processes"] and measured["cpu_us_per_message"]["gateway"] > 0
    assert set(measured["stalls"]) == {
        "gateway",
        "agent",
        "history",
        "billing",
        "connectors",
        "generator",  # the load generator's own collections
    }
    assert measured["stalls"]["gateway"]["max_loop_lag_s"] is not None
    # a 2 s round may see no collection of the generator's at all (its frames are short-lived:
    # few net allocations); what it counts is held by test_stall_figures.py
    assert measured["stalls"]["generator"]["gc_pause_ms"] >= 0
    assert "relaydesk bench" in done.stdout and "nothing_lost_or_duplicated" in done.stdout
