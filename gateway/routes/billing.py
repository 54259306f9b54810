"""Billing for a tenant's admins (SaaS mode): plan, usage and limits, invoices, plan changes.

Answers come from billing_service; in tool mode (or for a tool-mode tenant) every route
answers 404 ``not_found`` — there are no bills. Payments are recorded by a system admin
(`relaydesk admin record-payment`), not from the tenant's side.
"""

import uuid
from datetime import date
from typing import Any, TypeVar

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from contracts import Actor, Envelope, derive_event_id
from contracts.commands.billing import ChangePlan
from contracts.envelope import ActorKind
from contracts.queries import Query
from contracts.queries.billing import AccountQuery, InvoiceQuery, PlansQuery
from gateway.auth.http import ApiError, get_deps, require_agent
from gateway.auth.permissions import MANAGE_SETTINGS, VIEW_BILLING
from gateway.auth.tokens import AgentPrincipal
from gateway.deps import GatewayDeps
from gateway.queries import ask
from relaydesk.bus import RequestTimeout

R = TypeVar("R")
STATUS = {"not_found": 404, "invalid_payload": 400}
# The invoice is a document of its own: no script at all, its own inline style, nothing
# loaded, not framed. Sent as a header, and inside the page too: the admin page fetches it
# and opens it as a blob document, which no response header reaches.
INVOICE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
INVOICE_CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{INVOICE_CSP}">'


def with_policy_inside(page: str) -> str:
    """``page`` with the invoice CSP as the first element of its head (before any content
    it could apply to); a page without a head gets one."""
    head = page.lower().find("<head>")
    if head < 0:
        return f"<head>{INVOICE_CSP_META}</head>{page}"
    at = head + len("<head>")
    return page[:at] + INVOICE_CSP_META + page[at:]


class PlanChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    plan: str = Field(min_length=1, max_length=64)
    effective: date | None = None


async def ask_billing(deps: GatewayDeps, query: Query[R]) -> R:
    return await ask(deps, query, STATUS)


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api/billing", tags=["billing"])
    viewers = require_agent(VIEW_BILLING)

    @router.get("/plans")
    async def plans(
        agent: AgentPrincipal = Depends(viewers), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        # A tool-mode tenant has no billing at all (docs/billing.md): its account's 404
        # answers here too, rather than a price list it can never be charged by.
        await ask_billing(deps, AccountQuery(tenant=agent.tenant))
        return await ask_billing(deps, PlansQuery())

    @router.get("/account")
    async def account(
        agent: AgentPrincipal = Depends(viewers), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        return await ask_billing(deps, AccountQuery(tenant=agent.tenant))

    @router.get("/invoices/{number}.json")
    async def invoice_json(
        number: str, agent: AgentPrincipal = Depends(viewers), deps: GatewayDeps = Depends(get_deps)
    ) -> Any:
        invoice = await ask_billing(deps, InvoiceQuery(tenant=agent.tenant, number=number))
        return invoice.model_dump(mode="json", exclude={"html"})

    @router.get("/invoices/{number}.html", response_class=HTMLResponse)
    async def invoice_page(
        number: str, agent: AgentPrincipal = Depends(viewers), deps: GatewayDeps = Depends(get_deps)
    ) -> HTMLResponse:
        invoice = await ask_billing(deps, InvoiceQuery(tenant=agent.tenant, number=number))
        return HTMLResponse(
            with_policy_inside(invoice.html), headers={"Content-Security-Policy": INVOICE_CSP}
        )

    @router.post("/plan")
    async def change_plan(
        body: PlanChange,
        agent: AgentPrincipal = Depends(require_agent(MANAGE_SETTINGS)),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        key = uuid.uuid4().hex
        envelope = Envelope(
            id=derive_event_id(agent.tenant, agent.agent_id, key),
            type=ChangePlan.TYPE,
            tenant=agent.tenant,
            stream=f"billing:{agent.tenant}",
            actor=Actor(kind=ActorKind.agent, id=agent.agent_id),
            data=body.model_dump(mode="json", exclude_none=True),
        )
        try:
            reply = await deps.rpc.command(
                "billing", envelope, timeout=deps.settings.request_timeout_s
            )
        except RequestTimeout:
            raise ApiError(503, "unavailable", "the billing service did not answer") from None
        if not reply.ok:
            raise ApiError(
                STATUS.get(reply.code or "", 400),
                reply.code or "rejected",
                reply.message or "rejected",
            )
        return {"ok": True, "event_ids": list(reply.event_ids)}

    return router
