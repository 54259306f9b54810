"""CPU time and memory of the processes under test, read from procfs through psutil."""

from dataclasses import dataclass

import psutil

from tools.embedded import STORE_MODULE


@dataclass(frozen=True)
class Sample:
    cpu_s: dict[str, float]
    rss_bytes: dict[str, int]


class ProcessMeter:
    """Names the system's processes (``gateway``, ``agent``, ..., ``rabbitmq``) and samples them.

    Args:
        root_pid: ``relaydesk up``'s process; its children are the services.
        broker_pid: the broker's Erlang VM when the system runs on a node of its own; unset,
            the machine's ``beam.smp`` is taken (the system broker, shared with anything
            else that uses it).
    """

    def __init__(self, root_pid: int, broker_pid: int | None = None) -> None:
        self._processes: dict[str, psutil.Process] = {}
        for child in psutil.Process(root_pid).children(recursive=True):
            try:
                cmdline = child.cmdline()
            except psutil.Error:
                continue
            if "tools.cli" in cmdline and cmdline.index("tools.cli") + 1 < len(cmdline):
                self._processes[cmdline[cmdline.index("tools.cli") + 1]] = child
            elif STORE_MODULE in cmdline:
                self._processes["mongodb"] = (
                    child  # the embedded server does real work per event too
                )
        if broker_pid is not None:
            self._processes["rabbitmq"] = psutil.Process(broker_pid)
            return
        for process in psutil.process_iter(["name"]):
            if process.info["name"] in ("beam.smp", "beam"):
                self._processes["rabbitmq"] = process

    @property
    def names(self) -> list[str]:
        return sorted(self._processes)

    def pid(self, name: str) -> int:
        return self._processes[name].pid

    def sample(self) -> Sample:
        cpu, rss = {}, {}
        for name, process in self._processes.items():
            try:
                times = process.cpu_times()
                cpu[name] = times.user + times.system
                rss[name] = process.memory_info().rss
            except psutil.Error:
                continue
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
