"""Administration's decider: the admin handler tables over the admin state.

The handlers (``decisions.py``, ``accounts.py``) are pure functions returning
``(event_type, data)`` pairs; here each is wrapped so that the acting agent's grants are
checked first (``grants.py``: roles and permissions), and what it returns passes the plan's
seat check and is emitted through the runtime's decision. Sign-up commands are
refused outside SaaS mode before anything is decided. Events are folded once published.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agent_service.admin import accounts, decisions, pauses
from agent_service.admin.decisions import Emitted
from agent_service.admin.grants import check_grants
from agent_service.admin.seats import check_seats
from agent_service.admin.state import SERVICE, AdminState
from contracts.commands.admin import CreateTenant, SubscribeWebhook
from contracts.envelope import Envelope
from contracts.plans import PlanCatalogue
from contracts.replies import CommandReply
from relaydesk.decider import Decider, Decision, Handler, Rejected, utc_now
from relaydesk.net_guard import RefusedTarget, TargetPolicy

STREAM_KEYS = ("agent_id", "group_id", "canned_id", "subscription_id", "connector_id")
AdminDecision = Decision[AdminState]


def stream_for(data: Mapping[str, Any]) -> str:
    for key in STREAM_KEYS:
        if isinstance(data.get(key), str):
            return f"{key.removesuffix('_id')}:{data[key]}"
    return "tenant"


class AdminDecider(Decider[AdminDecision]):
    """Decides the ``admin`` commands.

    Args:
        state: the admin state, folded from the log.
        mode: the deployment's mode; sign-ups are only decided in ``saas``.
        catalogue: the plans whose ``agent_seats`` limit is enforced.
        clock: the decision time (sign-up expiry, plan changes with an effective date).
        targets: where a webhook may point (prepare checks a subscription's URL with a
            lookup; default: public addresses only, https).
        on_folded: called once a decision's events are folded (webhook workers follow).
    """

    service = SERVICE

    def __init__(
        self,
        state: AdminState,
        *,
        mode: str,
        catalogue: PlanCatalogue,
        clock: Callable[[], datetime] = utc_now,
        targets: TargetPolicy | None = None,
        on_folded: Callable[[], None] = lambda: None,
    ) -> None:
        self.state = state
        self._mode = mode
        self._catalogue = catalogue
        self._clock = clock
        self._targets = targets or TargetPolicy()
        self._on_folded = on_folded
        self.handlers: dict[str, Handler[AdminDecision]] = {
            **{name: self._emitting(h) for name, h in decisions.HANDLERS.items()},
            **{name: self._emitting(h) for name, h in pauses.HANDLERS.items()},
            **{
                name: self._emitting(h, clocked=name in accounts.CLOCKED)
                for name, h in accounts.HANDLERS.items()
            },
        }

    def _emitting(
        self, handler: Callable[..., Emitted], *, clocked: bool = False
    ) -> Handler[AdminDecision]:
        def decide(d: AdminDecision, command: Any) -> None:
            tenant = d.command.tenant
            check_grants(d.state, tenant, d.command.actor, command)  # roles, permissions
            emitted = (
                handler(d.state, tenant, command, now=d.now)
                if clocked
                else handler(d.state, tenant, command)
            )
            check_seats(d.state, tenant, emitted, self._catalogue, d.now.date())
            for type_name, data in emitted:
                d.emit(type_name, data)

        return decide

    @property
    def replies(self) -> dict[str, CommandReply]:
        return self.state.replies

    def decision(self, command: Envelope, context: object) -> AdminDecision:
        return Decision(
            SERVICE, self.state, command, now=self._clock(), stream=stream_for, context=context
        )

    def fold(self, event: Envelope) -> None:
        self.state.apply(event)  # the next command is decided on it at once

    async def prepare(self, command: Envelope, payload: Any) -> object:
        if command.type in accounts.SAAS_ONLY and self._mode != "saas":
            raise Rejected("forbidden", "sign-up is only open in SaaS mode")
        if isinstance(payload, CreateTenant) and payload.plan is not None:
            # billing reads an unknown plan as the catalogue's default: say so instead
            if payload.mode != "saas":
                raise Rejected("invalid_payload", "plan: only a SaaS tenant has a plan")
            if payload.plan not in self._catalogue.plans:
                known = ", ".join(sorted(self._catalogue.plans))
                raise Rejected(
                    "invalid_payload", f"plan: no plan {payload.plan!r} (the plans are {known})"
                )
        if isinstance(payload, SubscribeWebhook):
            # the address rules need the operator's settings and a DNS lookup: here, not in the
            # pure handler (which checks the URL's form); every delivery checks again
            try:
                await self._targets.check(payload.url, unresolvable_ok=True)
            except RefusedTarget as exc:
                raise Rejected("invalid_payload", f"webhook URL refused: {exc}") from None
        return None

    async def after(self, events: Sequence[Envelope]) -> None:
        self._on_folded()

    def reply(
        self, command: Envelope, reply: CommandReply, decision: AdminDecision | None
    ) -> CommandReply:
        """A decided command's reply names the id of what it made (``data.ids``)."""
        if decision is None or not reply.ok:
            return reply
        ids = [e.data.get(k) for e in decision.events for k in STREAM_KEYS if k in e.data]
        return reply.model_copy(update={"data": {"ids": ids[:1]}})
