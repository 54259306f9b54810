"""What routing did over a range of the log: wait times, missed conversations, load per agent.

One measure for the recorded log and for a simulated one (tools/replay/what_if.py), so the
two are compared by the same rule:

- **requests**: conversations requested in the range;
- **wait**: from a request to its first acceptance (seconds), for those accepted in the
  range; percentiles by nearest rank (an observed value, never interpolated);
- **missed**: requested in the range and not accepted by its end (nobody online, the
  customer left unanswered, or still waiting at ``--until``);
- **load per agent**: conversations they took in the range (accepted, or transferred to
  them) and their peak of conversations held at once, counting the ones they already held
  when the range began.
"""

import copy
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent_service.fold import apply
from agent_service.state import RoutingState
from contracts.envelope import Envelope
from contracts.events.conversation import (
    ConversationAccepted,
    ConversationRequested,
    ConversationTransferred,
)

PERCENTILES = (50, 90, 99)


@dataclass
class AgentLoad:
    conversations: int = 0
    peak: int = 0


@dataclass
class Outcome:
    requests: int = 0
    waits_s: list[float] = field(default_factory=list)  # accepted conversations, sorted
    missed: int = 0
    load: dict[str, AgentLoad] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return len(self.waits_s)

    def wait_percentile(self, p: int) -> float | None:
        """Nearest rank: the smallest wait at or above ``p`` percent of the waits."""
        if not self.waits_s:
            return None
        return self.waits_s[max(1, math.ceil(p / 100 * len(self.waits_s))) - 1]

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "missed": self.missed,
            "wait_s": {
                **{f"p{p}": self.wait_percentile(p) for p in PERCENTILES},
                "max": self.waits_s[-1] if self.waits_s else None,
            },
            "agents": {
                agent_id: {"conversations": load.conversations, "peak_concurrent": load.peak}
                for agent_id, load in sorted(self.load.items())
            },
        }


def measure(start: RoutingState, tenant_id: str, log: Iterable[Envelope]) -> Outcome:
    """Fold ``log`` (the range, log order) over a copy of ``start`` (the state at its start)."""
    state = copy.deepcopy(start)
    tenant = state.tenant(tenant_id)
    outcome = Outcome()
    for agent in tenant.agents.values():
        outcome.load[agent.agent_id] = AgentLoad(peak=len(agent.active))
    requested_at: dict[str, datetime] = {}
    accepted: set[str] = set()
    for event in log:
        if event.tenant != tenant_id:
            continue
        apply(state, event)
        conversation_id = str(event.data.get("conversation_id"))
        taker: str | None = None
        if event.type == ConversationRequested.TYPE and conversation_id not in requested_at:
            requested_at[conversation_id] = event.occurred_at
        elif event.type == ConversationAccepted.TYPE:
            taker = event.data["agent_id"]
            if conversation_id in requested_at and conversation_id not in accepted:
                accepted.add(conversation_id)
                wait = event.occurred_at - requested_at[conversation_id]
                outcome.waits_s.append(round(wait.total_seconds(), 3))
        elif event.type == ConversationTransferred.TYPE:
            taker = event.data["to_agent_id"]
        if taker is not None:
            load = outcome.load.setdefault(taker, AgentLoad())
            load.conversations += 1
            load.peak = max(load.peak, len(tenant.agent(taker).active))
    outcome.requests = len(requested_at)
    outcome.missed = len(requested_at) - len(accepted)
    outcome.waits_s.sort()
    outcome.load = {a: load for a, load in outcome.load.items() if load.conversations or load.peak}
    return outcome
