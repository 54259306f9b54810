"""Reports for permitted agents (``view_reports``): support metrics folded from the log by
history_service, as JSON (for the charts) or CSV."""

from typing import Any, cast

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from contracts.queries.history import GroupBy, Moment, Report, ReportsSummaryQuery
from gateway.auth.http import get_deps, require_agent
from gateway.auth.permissions import VIEW_REPORTS
from gateway.auth.tokens import AgentPrincipal
from gateway.deps import GatewayDeps
from gateway.routes.conversations import ask_history

GROUP_BY = "^(day|agent|group|channel)$"


def build_router(deps: GatewayDeps) -> APIRouter:
    router = APIRouter(prefix="/api/reports", tags=["reports"])
    viewers = require_agent(VIEW_REPORTS)

    async def summary_of(
        agent: AgentPrincipal,
        deps: GatewayDeps,
        group_by: str,
        since: Moment | None,
        until: Moment | None,
    ) -> Report:
        query = ReportsSummaryQuery(
            tenant=agent.tenant, group_by=cast(GroupBy, group_by), since=since, until=until
        )
        return await ask_history(deps, query)

    @router.get("/summary")
    async def summary(
        group_by: str = Query("day", pattern=GROUP_BY),
        since: Moment | None = None,
        until: Moment | None = None,
        agent: AgentPrincipal = Depends(viewers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Any:
        found = await summary_of(agent, deps, group_by, since, until)
        return found.model_dump(mode="json", exclude={"csv"})

    @router.get("/summary.csv")
    async def summary_csv(
        group_by: str = Query("day", pattern=GROUP_BY),
        since: Moment | None = None,
        until: Moment | None = None,
        agent: AgentPrincipal = Depends(viewers),
        deps: GatewayDeps = Depends(get_deps),
    ) -> Response:
        found = await summary_of(agent, deps, group_by, since, until)
        return Response(
            found.csv,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="relaydesk-{group_by}.csv"'},
        )

    return router
