"""Reports folded from the log, the audit timeline, and time travel over the real system."""

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.admin.helpers import eventually, new_agent, owner_session
from tests.history_service.flows import served_conversation
from tests.system import running_system


async def test_reports_count_what_happened_per_agent_and_day_and_export_csv(settings) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        agent_id, _ = await served_conversation(system, http, owner)

        async def rated_row() -> dict[str, Any] | None:
            rows = (
                await http.get("/api/reports/summary", params={"group_by": "agent"}, headers=owner)
            ).json()["rows"]
            return next((r for r in rows if r["key"] == agent_id and r["csat"] is not None), None)

        row = await eventually(rated_row, what="the rated conversation in the report")
        assert (
            row["conversations"] == 1
            and row["messages"] == 2
            and row["missed"] == 0
            and row["csat"] == 4.0
        )
        assert (
            row["wait_s"] >= 0 and row["first_response_s"] >= row["wait_s"] and row["handle_s"] >= 0
        )

        today = datetime.now(UTC).date().isoformat()
        by_day = (
            await http.get("/api/reports/summary", params={"group_by": "day"}, headers=owner)
        ).json()
        assert [r["key"] for r in by_day["rows"]] == [today] and "first_response_s" in by_day[
            "definitions"
        ]
        exported = await http.get(
            "/api/reports/summary.csv", params={"group_by": "channel"}, headers=owner
        )
        assert exported.status_code == 200 and exported.headers["content-type"].startswith(
            "text/csv"
        )
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert (
            table[0]["key"] == "web"
            and table[0]["conversations"] == "1"
            and float(table[0]["csat"]) == 4.0
        )
        assert (
            await http.get("/api/reports/summary", params={"group_by": "planet"}, headers=owner)
        ).status_code == 400

        _, agent_auth = await new_agent(http, owner, "rep", "bob")
        assert (await http.get("/api/reports/summary", headers=agent_auth)).status_code == 403


async def test_timeline_and_time_travel_show_the_conversation_and_settings_as_they_were(
    settings,
) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        _, conversation_id = await served_conversation(system, http, owner)

        async def full_timeline() -> dict[str, Any] | None:
            found = (
                await http.get(
                    f"/api/audit/conversations/{conversation_id}/timeline", headers=owner
                )
            ).json()
            return (
                found
                if any(e["type"] == "conversation.rated" for e in found.get("events", []))
                else None
            )

        timeline = await eventually(full_timeline, what="the archived timeline")
        assert timeline["chain_ok"] is True and timeline["broken_at"] is None
        types = [e["type"] for e in timeline["events"]]
        assert (
            types.index("conversation.requested")
            < types.index("conversation.accepted")
            < types.index("conversation.closed")
        )
        positions = [e["position"] for e in timeline["events"]]
        assert positions == sorted(positions)

        accepted = next(e for e in timeline["events"] if e["type"] == "conversation.accepted")
        then = (
            await http.get(
                f"/api/audit/conversations/{conversation_id}/state",
                params={"at": accepted["occurred_at"]},
                headers=owner,
            )
        ).json()
        assert (
            then["conversation"]["status"] == "engaged" and then["conversation"]["rating"] is None
        )
        assert not any(m["event"]["type"] == "message.sent" for m in then["messages"])
        now = (
            await http.get(
                f"/api/audit/conversations/{conversation_id}/state",
                params={"at": datetime.now(UTC).isoformat()},
                headers=owner,
            )
        ).json()
        assert (
            now["conversation"]["status"] == "closed"
            and now["conversation"]["rating"]["score"] == 4
        )
        assert [
            m["event"]["data"]["body"]
            for m in now["messages"]
            if m["event"]["type"] == "message.sent"
        ] == ["Hello Vera", "Hi!"]
        before = await http.get(
            f"/api/audit/conversations/{conversation_id}/state",
            params={"at": "2000-01-01T00:00:00Z"},
            headers=owner,
        )
        assert before.status_code == 404

        first_change = datetime.now(UTC)
        assert (
            await http.patch("/api/admin/settings", headers=owner, json={"messages_on_enter": 7})
        ).status_code == 200
        await eventually(
            lambda: _settings_changes(http, owner, 1), what="the first settings change archived"
        )
        between = datetime.now(UTC)
        assert (
            await http.patch("/api/admin/settings", headers=owner, json={"messages_on_enter": 9})
        ).status_code == 200
        await eventually(
            lambda: _settings_changes(http, owner, 2), what="the second settings change archived"
        )
        at = {
            moment: (
                await http.get(
                    "/api/audit/settings", params={"at": moment.isoformat()}, headers=owner
                )
            ).json()["settings"]["messages_on_enter"]
            for moment in (first_change, between, datetime.now(UTC))
        }
        assert list(at.values()) == [50, 7, 9]


async def _settings_changes(http: httpx.AsyncClient, owner: dict[str, str], count: int) -> bool:
    found = (
        await http.get(
            "/api/audit/settings", params={"at": datetime.now(UTC).isoformat()}, headers=owner
        )
    ).json()
    return found["changes"] >= count
