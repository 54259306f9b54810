"""CPU time and memory of the processes under test, read from procfs through psutil."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import psutil

from tools.embedded import STORE_MODULE


@dataclass(frozen=True)
class Sample:
    cpu_s: dict[str, float]
    rss_bytes: dict[str, int]


class ProcessMeter:
    """Names the system's processes (``gateway``, ``agent``, ..., ``rabbitmq``) and samples them.

    A name may stand for several processes, whose CPU and memory are then summed: every node
    of a local RabbitMQ cluster is ``rabbitmq``, and the gateways started beside ``up``'s are
    ``gateway`` with it (a cluster run counted one node, whichever ``beam.smp`` came last,
    and none of the extra gateways).

    Args:
        root_pid: ``relaydesk up``'s process; its children are the services.
        broker_pids: the broker's Erlang VMs when the system runs on nodes of its own; empty,
            the machine's ``beam.smp`` is taken (the system broker, shared with anything
            else that uses it).
        also: more processes by name, counted with the ones of that name found under
            ``root_pid``.
    """

    def __init__(
        self,
        root_pid: int,
        broker_pids: Sequence[int] = (),
        also: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        self._processes: dict[str, list[psutil.Process]] = {}
        for child in psutil.Process(root_pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if "tools.cli" in cmdline and cmdline.index("tools.cli") + 1 < len(cmdline):
                self._add(cmdline[cmdline.index("tools.cli") + 1], child)
            elif STORE_MODULE in cmdline:
                self._add("mongodb", child)  # the embedded server does real work per event too
        for name, pids in (also or {}).items():
            for pid in pids:
                self._add(name, psutil.Process(pid))
        for pid in broker_pids:
            self._add("rabbitmq", psutil.Process(pid))
        if broker_pids:
            return
        for process in psutil.process_iter(["name"]):
            if process.info["name"] in ("beam.smp", "beam"):
                self._processes["rabbitmq"] = [process]

    def _add(self, name: str, process: psutil.Process) -> None:
        self._processes.setdefault(name, []).append(process)

    @property
    def names(self) -> list[str]:
        return sorted(self._processes)

    def pid(self, name: str) -> int:
        """The process of ``name`` (the first, for a name that stands for several)."""
        return self._processes[name][0].pid

    def sample(self) -> Sample:
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for name, processes in self._processes.items():
            for process in processes:
                try:
                    times = process.cpu_times()
                    memory = process.memory_info().rss
                except psutil.Error:
                    continue
                cpu[name] = cpu.get(name, 0.0) + times.user + times.system
                rss[name] = rss.get(name, 0) + memory
        return Sample(cpu, rss)

    @staticmethod
    def cpu_us_per(before: Sample, after: Sample, count: int) -> dict[str, float]:
        """Microseconds of CPU each process spent per unit of work between two samples."""
        if count <= 0:
            return {}
        return {
            name: round((after.cpu_s[name] - before.cpu_s.get(name, 0.0)) * 1e6 / count, 1)
            for name in after.cpu_s
        }
