"""The embedded store (tools/embedded_store.py) stops, and closes WiredTiger so the data
written before is there at the next start: as an orphan (its starter SIGKILLed, as a killed
pytest run or `relaydesk up` is), by itself or on SIGTERM, and when signalled again and
again while it stops. Real processes and real signals.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from tools.embedded import EmbeddedMongo, free_port

# The store's stop takes ~2 s (SecantusDB joins its accept thread for up to 2 s); an orphan
# that has not stopped within this is not going to.
STOP_DEADLINE_S = 30.0

REPO = Path(__file__).resolve().parents[2]

# The starter: runs the store as its child, says the store's pid, then waits to be killed.
# ``embedded``: through tools.embedded.EmbeddedMongo, as the test fixtures and benches do;
# otherwise the store's bare command line with stdin/stdout/stderr piped to the starter, as
# `relaydesk up` runs it (those pipes close with the starter).
STARTER = """
import subprocess, sys, time
from tools.embedded import EmbeddedMongo, STORE_MODULE, wait_for_port
data, port, embedded = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "embedded"
if embedded:
    store = EmbeddedMongo(data, port).start().process
else:
    store = subprocess.Popen(
        [sys.executable, "-m", STORE_MODULE, "--host", "127.0.0.1", "--port", str(port),
         "--storage-path", data, "--log-level", "WARNING", "--standalone"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, 60, "the store")
print(store.pid, flush=True)
time.sleep(3600)
"""


def _running(pid: int) -> bool:
    """``pid`` is a live process (not gone, not a zombie its new parent has yet to reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    if not Path("/proc/self/stat").exists():  # not Linux: no zombie to tell apart
        return True
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except OSError:  # reaped meanwhile
        return False
    return state != "Z"


def _stopped_within(pid: int, deadline_s: float) -> float | None:
    """Seconds until ``pid`` stopped, polled; None when it still runs after ``deadline_s``."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if not _running(pid):
            return time.monotonic() - start
        time.sleep(0.05)  # the pause between polls, not the wait itself
    return None


def _orphaned_store(data: Path, port: int, how: str) -> int:
    """The pid of a store started by a starter process that is then SIGKILLed, after a
    document was written to it."""
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(data), str(port), how],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert starter.stdout is not None
    line = starter.stdout.readline()
    try:
        pid = int(line)
    except ValueError:
        starter.kill()
        starter.wait()
        raise AssertionError(f"the starter did not start the store: {line!r}") from None
    client: MongoClient[dict[str, Any]] = MongoClient(EmbeddedMongo(str(data), port).url)
    with client:
        client.orphan.items.insert_one({"_id": "before"})
    starter.kill()
    starter.wait()
    assert _running(pid), "the store went with its starter before the test looked at it"
    return pid


def _assert_stops(pid: int, failure: str) -> None:
    """Fail with ``failure`` unless ``pid`` ends within ``STOP_DEADLINE_S``; a store still
    running then is SIGKILLed, so a failing test leaves no orphan of its own."""
    try:
        assert _stopped_within(pid, STOP_DEADLINE_S) is not None, failure
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _kept_its_data(data: Path) -> None:
    """A store started again on ``data`` reads the document written before the stop."""
    again = EmbeddedMongo(str(data)).start()
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(again.url)
        with client:
            assert client.orphan.items.find_one({"_id": "before"}) == {"_id": "before"}
    finally:
        again.stop()


def test_a_store_whose_starter_is_killed_stops_by_itself_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """The store a test fixture started outlived a SIGKILLed pytest, holding its port and
    data directory until someone SIGKILLed it too (nothing told it its starter was gone)."""
    data = tmp_path / "mongo"
    pid = _orphaned_store(data, free_port(), "embedded")
    _assert_stops(pid, f"the orphaned store still runs {STOP_DEADLINE_S:.0f}s on")
    _kept_its_data(data)


def test_an_orphaned_store_with_its_pipes_closed_stops_on_sigterm_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """`kill <pid>` stops an orphan whose stdout and stderr lead nowhere (the starter's end
    of its pipes closed with the starter), and WiredTiger is closed, not abandoned."""
    data = tmp_path / "mongo"
    pid = _orphaned_store(data, free_port(), "bare")  # no --parent-pid: it does not stop itself
    os.kill(pid, signal.SIGTERM)
    _assert_stops(pid, f"the orphaned store ignored SIGTERM for {STOP_DEADLINE_S:.0f}s")
    _kept_its_data(data)


def test_parent_pid_is_ours_and_not_passed_on() -> None:
    from tools.embedded_store import parent_option

    assert parent_option(["--port", "1", "--parent-pid", "42", "--standalone"]) == (
        42,
        ["--port", "1", "--standalone"],
    )
    assert parent_option(["--parent-pid=7"]) == (7, [])
    assert parent_option(["--port", "1"]) == (None, ["--port", "1"])


def test_signals_during_the_stop_do_not_cut_it_short(tmp_path: Path) -> None:
    """SIGTERM after SIGTERM while the store stops (a repeated `kill`, the parent-death signal
    beside `up`'s own): one stop runs to its end and the process exits 0. SecantusDB's handler
    ran a second stop inside the first, whose exit unwound the first mid-close, or the
    interpreter's shutdown put the default action back and a late SIGTERM killed it."""
    data = tmp_path / "mongo"
    store = EmbeddedMongo(str(data)).start()
    assert store.process is not None
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(store.url)
        with client:
            client.orphan.items.insert_one({"_id": "before"})
        start = time.monotonic()
        while store.process.poll() is None and time.monotonic() - start < STOP_DEADLINE_S:
            store.process.send_signal(signal.SIGTERM)
            time.sleep(0.005)  # the pause between signals, not a wait
        assert store.process.poll() is not None, "the store did not stop under SIGTERMs"
        assert store.process.returncode == 0
    finally:
        store.kill()
    _kept_its_data(data)
