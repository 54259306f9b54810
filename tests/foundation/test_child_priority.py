"""`relaydesk up`'s background children really run at a lower priority (tools/supervision.py).

Each child has a session of its own, and on a kernel with autogroup scheduling (Debian's
and Ubuntu's default) a session is an autogroup: CPU is shared between autogroups before
nice values count. A child's nice value alone left the embedded store with the gateway's
share; the test reads what the kernel will weigh, the autogroup's nice.
"""

import os
import sys
from pathlib import Path

import pytest

from tools.supervision import Child, RestartPolicy, stop_all

AUTOGROUP = Path("/proc/self/autogroup")


def autogroup_of(pid: int | str) -> list[str]:
    """``['/autogroup-<n>', 'nice', '<nice>']`` (procfs: no I/O to wait for).

    Empty for a process in the root autogroup (init's session: a runner that never called
    setsid reads so); the kernel weighs that one as the root task group, with no nice of its own.
    """
    return Path(f"/proc/{pid}/autogroup").read_text().split()


async def _never_ready() -> bool:
    return False


@pytest.mark.skipif(not AUTOGROUP.exists(), reason="no autogroup scheduling on this kernel")
async def test_a_background_child_is_weighed_lower_in_its_own_autogroup() -> None:
    policy = RestartPolicy(backoff_s=1, backoff_max_s=1, limit=1, window_s=1)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    background = Child("store", sleeper, {}, _never_ready, policy, niceness=7)
    foreground = Child("gateway", sleeper, {}, _never_ready, policy)
    await background.start()
    await foreground.start()
    try:
        assert background.pid is not None and foreground.pid is not None
        mine = autogroup_of("self")[:1] or ["root autogroup"]
        # The process's own nice value: what counts inside one autogroup or cgroup.
        inherited = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, background.pid) == min(inherited + 7, 19)
        assert os.getpriority(os.PRIO_PROCESS, foreground.pid) == inherited
        groups = {child.name: autogroup_of(child.pid) for child in (background, foreground)}
        # Each in a session, so an autogroup, of its own (not up's, not each other's) ...
        assert len({groups["store"][0], groups["gateway"][0], mine[0]}) == 3, (groups, mine)
        # ... which is what the kernel weighs: lowered for the background child only.
        assert groups["store"][1:] == ["nice", "7"], groups
        assert groups["gateway"][1:] == ["nice", "0"], groups
    finally:
        await stop_all([background, foreground])
