"""CPU per process in the bench (tools/bench/processes.py): a name may stand for several
processes, summed. A cluster run counted one RabbitMQ node (whichever ``beam.smp`` came last)
and none of the gateways started beside ``up``'s."""

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tools.bench.processes import ProcessMeter

# Spends 0.3 s of CPU, says so, then waits for its stdin to close.
BURN = (
    "import sys, time\n"
    "end = time.process_time() + 0.3\n"
    "while time.process_time() < end: pass\n"
    "print('spent', flush=True)\n"
    "sys.stdin.read()\n"
)


@contextmanager
def burners(count: int) -> Iterator[list[subprocess.Popen[str]]]:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "spent"
        yield processes
    finally:
        for process in processes:
            process.communicate(timeout=30)


def test_each_name_sums_the_cpu_and_memory_of_every_process_it_stands_for() -> None:
    with burners(4) as (root, node_1, node_2, gateway):
        # a root without children: the test's own process may have some (a store, a system)
        meter = ProcessMeter(
            root.pid, broker_pids=[node_1.pid, node_2.pid], also={"gateway": [gateway.pid]}
        )
        assert meter.names == ["gateway", "rabbitmq"]
        assert meter.pid("rabbitmq") == node_1.pid
        sample = meter.sample()
    assert sample.cpu_s["rabbitmq"] >= 0.6  # both nodes' 0.3 s, not one of them
    assert 0.3 <= sample.cpu_s["gateway"] < 0.6
    assert sample.rss_bytes["rabbitmq"] > sample.rss_bytes["gateway"]  # two processes' memory
