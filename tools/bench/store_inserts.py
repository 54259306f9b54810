"""CPU per archived event inside the embedded store, with and without its insert paths.

    python -m tools.bench.store_inserts                 # 20,000 events, 4 rounds a side
    python -m tools.bench.store_inserts --events 5000 --rounds 2

Each round runs in a fresh child process: an in-memory SecantusDB ``Storage`` with the
embedded store's catalog memo and compiled packing (as ``relaydesk up`` runs it), the
archive's three secondary indexes (docs/history.md), then the events inserted in batches
of 1,000 as history writes them. The sides add one change each: ``library`` leaves
SecantusDB's own index keys; ``written_out`` installs tools/secantus_index_keys.py;
``checks_once`` also tools/secantus_insert_checks.py. The sides alternate, so a machine
whose speed drifts (a shared VM's does, by tens of percent within minutes) weighs on both;
the report gives each side's median and range of µs of CPU (``time.process_time``) per event.
No server, no socket: what is measured is the store's own work per row.
"""

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from importlib.metadata import version

SIDES = ("library", "written_out", "checks_once")
BATCH = 1_000


def _archived_event(batch: int, n: int, now: datetime.datetime) -> dict[str, object]:
    return {
        "_id": f"{batch:06d}-{n:04d}-0123456789abcdef",
        "position": batch * BATCH + n,
        "type": "message.sent",
        "v": 1,
        "tenant": f"tenant-{n % 5}",
        "stream": f"conv:{n % 200}",
        "actor": {"kind": "visitor", "id": f"v-{n % 200}"},
        "occurred_at": now.isoformat(),
        "data": {"message_id": f"m-{batch}-{n}", "text": "hello there"},
        "ts": now + datetime.timedelta(microseconds=n),
        "prev_hash": "a" * 64,
        "hash": "b" * 64,
    }


def one_round(side: str, events: int) -> float:
    """µs of CPU per event inserted, in this process."""
    from secantus.storage import Storage

    from tools.embedded_store import PATCHED_RELEASES, CatalogMemo, install
    from tools.secantus_index_keys import install as install_index_keys
    from tools.secantus_insert_checks import install as install_insert_checks
    from tools.wiredtiger_packing import install as install_packing

    release = version("SecantusDB")
    if install(Storage, release, CatalogMemo()) or install_packing():
        raise SystemExit("the embedded store's changes do not apply to this SecantusDB")
    if side != "library" and install_index_keys(release, PATCHED_RELEASES):
        raise SystemExit("the index-key path does not apply to this SecantusDB")
    if side == "checks_once" and install_insert_checks(release, PATCHED_RELEASES):
        raise SystemExit("the insert checks do not apply to this SecantusDB")
    store = Storage(":memory:", enable_oplog=False)
    try:
        store.create_index("db", "events", "position_1", {"position": 1})
        store.create_index("db", "events", "chain", {"tenant": 1, "stream": 1, "position": 1})
        store.create_index("db", "events", "tenant_ts", {"tenant": 1, "ts": 1})
        now = datetime.datetime.now(datetime.UTC)
        spent = 0.0
        for batch in range(max(1, events // BATCH)):
            rows = [_archived_event(batch, n, now) for n in range(BATCH)]
            started = time.process_time()
            store.insert("db", "events", rows)
            spent += time.process_time() - started
        return spent * 1e6 / (max(1, events // BATCH) * BATCH)
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per side")
    parser.add_argument("--round", choices=SIDES, help=argparse.SUPPRESS)  # a child's one round
    args = parser.parse_args(argv)
    if args.round:
        print(json.dumps({"us_per_event": one_round(args.round, args.events)}))
        return 0
    measured: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_number in range(args.rounds):
        for side in SIDES:
            child = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    __spec__.name,
                    "--round",
                    side,
                    "--events",
                    str(args.events),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            measured[side].append(json.loads(child.stdout)["us_per_event"])
            print(f"round {round_number + 1} {side:12} {measured[side][-1]:7.1f} µs/event")
    print("µs of CPU per archived event, median (min–max) over rounds:")
    for side, values in measured.items():
        print(f"  {side:12} {statistics.median(values):7.1f} ({min(values):.1f}–{max(values):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
