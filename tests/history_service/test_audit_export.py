"""`relaydesk audit verify` finds tampering; `export` + `import` rebuild the same read models,
with the imported webhook subscriptions and connectors paused until an admin resumes them."""

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import httpx

from connectors.service import ConnectorsService
from contracts import Actor, Envelope
from contracts.events.connector import ConnectorConfigured
from contracts.events.conversation import ConversationRated
from relaydesk.bus import Bus
from relaydesk.sealing import SecretBox
from relaydesk.settings import Settings
from relaydesk.store import database, make_client
from tests.admin.helpers import eventually, owner_session
from tests.admin.receiver import Receiver
from tests.admin.test_webhooks import subscribe
from tests.cli_process import run_relaydesk
from tests.connectors.fakes.telegram import FakeTelegram
from tests.history_service.flows import served_conversation
from tests.keys import secret_env
from tests.system import running_system
from tools.embedded import free_port
from tools.replay.export_file import read_export

IMPORTED_BOT = "424242:imported-bot-token"
LIVE_BOT = "434343:live-bot-token"


def command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "RELAYDESK_AMQP_URL": settings.amqp_url,
        "MONGO_URL": settings.mongo_url or "",
        "RELAYDESK_MONGO_DB": settings.mongo_db,
        **secret_env(settings),  # the audit signing key: verify checks the signed checkpoints
    }
    return run_relaydesk(args, env, timeout=120)


async def rated(http: httpx.AsyncClient, auth: dict[str, str], conversation_id: str) -> dict | None:
    response = await http.get(f"/api/conversations/{conversation_id}/transcript", headers=auth)
    if response.status_code != 200:
        return None
    found = response.json()
    # History writes a batch's read models first and its archive second: a transcript read in
    # between shows the rating without the events of the same batch. It is whole once the
    # rating's own event is archived, and with it everything before it on the log.
    archived = {event["type"] for event in found["events"]}
    return (
        found
        if found["conversation"].get("rating") and ConversationRated.TYPE in archived
        else None
    )


async def configure_polling_bot(settings: Settings, connector_id: str, token: str) -> None:
    """The event the connectors service decides for a Telegram bot in polling mode (the source
    system runs no connectors service: it would poll the fake bot before the export)."""
    bus = await Bus(settings.amqp_url, service="test", stream_url=settings.stream_url).connect()
    try:
        await bus.publish(
            Envelope(
                type=ConnectorConfigured.TYPE,
                tenant="rep",
                stream=f"connector:{connector_id}",
                actor=Actor(kind="admin", id="owner"),
                data={
                    "connector_id": connector_id,
                    "platform": "telegram",
                    "public_config": {"mode": "polling"},
                    "sealed_config": SecretBox.from_settings(settings).seal({"bot_token": token}),
                },
            )
        )
    finally:
        await bus.close()


def delivered_ids(receiver: Receiver) -> list[str]:
    return [headers["x-relaydesk-event-id"] for headers, _ in receiver.received]


def polled_by(fake: FakeTelegram, token: str) -> bool:
    """A poller starts with deleteWebhook, then getUpdates."""
    bot = int(token.split(":")[0])
    return any(b == bot for b, method, _ in fake.webhook_calls)


async def listed_paused(
    http: httpx.AsyncClient, auth: dict[str, str], what: str, key: str, item_id: str
) -> bool | None:
    found = (await http.get(f"/api/admin/{what}", headers=auth)).json()
    return next((item["paused"] for item in found if item[key] == item_id), None)


async def test_audit_verify_reports_the_first_tampered_event(settings: Settings) -> None:
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        _, conversation_id = await served_conversation(system, http, owner)
        transcript = await eventually(
            lambda: rated(http, owner, conversation_id), what="the archived conversation"
        )

        intact = await asyncio.to_thread(
            command, system.settings, "audit", "verify", "--tenant", "rep"
        )
        assert intact.returncode == 0 and "intact" in intact.stdout, intact.stdout + intact.stderr

        victim = next(e for e in transcript["events"] if e["type"] == "message.sent")
        client = make_client(system.settings.mongo_url or "")
        try:
            await database(client, system.settings.mongo_db)["events"].update_one(
                {"_id": victim["id"]}, {"$set": {"data.body": "I never said that"}}
            )
        finally:
            await client.close()
        broken = await asyncio.to_thread(
            command,
            system.settings,
            "audit",
            "verify",
            "--tenant",
            "rep",
            "--conversation",
            conversation_id,
        )
        assert broken.returncode == 1
        assert (
            f"at position {victim['position']}" in broken.stdout and victim["id"] in broken.stdout
        )
        timeline = (
            await http.get(f"/api/audit/conversations/{conversation_id}/timeline", headers=owner)
        ).json()
        assert timeline["chain_ok"] is False and timeline["broken_at"] == victim["position"]
        usage = await asyncio.to_thread(
            command, system.settings, "audit", "verify", "--conversation", conversation_id
        )
        assert usage.returncode == 2 and "--tenant" in usage.stderr


async def test_export_then_import_yields_the_same_read_models_with_hooks_and_bots_paused(
    settings: Settings, vhosts, tmp_path: Path
) -> None:
    exported = tmp_path / "rep.jsonl"
    # the webhook receivers listen on loopback: allowed as an operator allows an on-premises one
    settings = settings.model_copy(update={"webhook_allowed_networks": "127.0.0.1/32"})
    # Down while the source runs (it delivers nothing to it); up on the target from the start.
    hook_receiver = Receiver(free_port())
    async with (
        running_system(settings) as system,
        httpx.AsyncClient(base_url=system.gateway.base_url) as http,
    ):
        owner = await owner_session(system, http, "rep")
        hook = await subscribe(http, owner, hook_receiver.url, ["canned_response.created"])
        made = await http.post("/api/canned", headers=owner, json={"shortcut": "hi", "text": "Hi"})
        source_canned = made.json()["event_ids"]
        await configure_polling_bot(system.settings, "tg-imported", IMPORTED_BOT)
        # archived before the conversation's rating, which the export waits for
        _, conversation_id = await served_conversation(system, http, owner)
        original = await eventually(
            lambda: rated(http, owner, conversation_id), what="the archived conversation"
        )
        done = await asyncio.to_thread(
            command, system.settings, "export", "--tenant", "rep", "--output", str(exported)
        )
        assert done.returncode == 0, done.stderr
        messages = (
            await http.get(f"/api/conversations/{conversation_id}/messages", headers=owner)
        ).json()
    records = read_export(exported).records
    conversation_lines = [r for r in records if r["stream"] == f"conv:{conversation_id}"]
    assert [line["_id"] for line in conversation_lines] == [
        event["id"] for event in original["events"]
    ]

    vhost = vhosts.create()
    telegram = FakeTelegram(IMPORTED_BOT)
    telegram.add_bot(LIVE_BOT)
    await telegram.start()
    await hook_receiver.start()
    live_receiver = await Receiver(free_port()).start()
    fresh_settings = settings.model_copy(
        update={
            "amqp_url": vhosts.url_for(vhost),
            "mongo_db": f"t_{uuid.uuid4().hex[:12]}",
            "telegram_api_base": telegram.api_base(),
            "connectors_port": 0,
        }
    )
    connectors = ConnectorsService(fresh_settings)
    try:
        async with (
            running_system(fresh_settings) as fresh,
            httpx.AsyncClient(base_url=fresh.gateway.base_url) as http,
        ):
            # together: the connectors service folds the log from its start, whenever it comes
            imported, _ = await asyncio.gather(
                asyncio.to_thread(command, fresh.settings, "import", "--input", str(exported)),
                connectors.start(),
            )
            assert imported.returncode == 0, imported.stderr
            # The accounts came along with the log: the same owner signs in on the fresh system.
            login = await http.post(
                "/api/auth/login",
                json={"tenant": "rep", "email": "boss@rep.test", "password": "correct horse"},
            )
            assert login.status_code == 200, login.text
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            copy = await eventually(
                lambda: rated(http, auth, conversation_id), what="the imported conversation"
            )
            for field in (
                "status",
                "agent_id",
                "message_count",
                "rating",
                "channel",
                "visitor",
                "created_at",
                "closed_at",
            ):
                assert copy["conversation"][field] == original["conversation"][field], field
            assert [e["id"] for e in copy["events"]] == [e["id"] for e in original["events"]]
            copied = (
                await http.get(f"/api/conversations/{conversation_id}/messages", headers=auth)
            ).json()
            assert [m["event"] for m in copied] == [
                m["event"] for m in messages
            ]  # positions are the new log's

            await imported_ones_listed_paused(http, auth, hook["subscription_id"])
            # what the subscription wants, published on the target while it is paused
            made = await http.post(
                "/api/canned", headers=auth, json={"shortcut": "new", "text": "New"}
            )
            target_canned = made.json()["event_ids"]
            # A live subscription and bot, made after the imported ones, to see the services at
            # work: the dispatcher and the poller would have started the imported ones as early.
            await subscribe(http, auth, live_receiver.url, ["canned_response.created"])
            live_bot = await http.put(
                "/api/admin/connectors/tg-live",
                headers=auth,
                json={
                    "platform": "telegram",
                    "public_config": {"mode": "polling"},
                    "secrets": {"bot_token": LIVE_BOT},
                },
            )
            assert live_bot.status_code == 200, live_bot.text
            await http.post("/api/canned", headers=auth, json={"shortcut": "x", "text": "X"})
            await eventually(lambda: live_receiver.received, what="the live subscription at work")
            await eventually(lambda: polled_by(telegram, LIVE_BOT), what="the live bot polled")
            assert hook_receiver.received == [], "the imported subscription delivered"
            assert not polled_by(telegram, IMPORTED_BOT), "the imported bot was polled"

            for what, item in (
                ("webhooks", hook["subscription_id"]),
                ("connectors", "tg-imported"),
            ):
                resumed = await http.post(f"/api/admin/{what}/{item}/resume", headers=auth)
                assert resumed.status_code == 200, resumed.text
                again = await http.post(f"/api/admin/{what}/{item}/resume", headers=auth)
                assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
            # Nothing lost: the imported events after the subscription's creation (the source
            # delivered them, or not yet: receivers dedupe by event id), then those published
            # while it was paused, in log order.
            await eventually(
                lambda: set(source_canned + target_canned) <= set(delivered_ids(hook_receiver)),
                what="the resumed subscription's deliveries",
            )
            ids = delivered_ids(hook_receiver)
            assert ids.index(source_canned[0]) < ids.index(target_canned[0])
            await eventually(lambda: polled_by(telegram, IMPORTED_BOT), what="the resumed bot")

        bad = tmp_path / "bad.jsonl"
        header_and_first = exported.read_text().splitlines()[:2]
        bad.write_text("\n".join(header_and_first) + '\n{"type": "nonsense"}\n')
        refused = await asyncio.to_thread(command, fresh_settings, "import", "--input", str(bad))
        assert (
            refused.returncode == 2
            and "line 3" in refused.stderr
            and "nothing imported" in refused.stderr
        )
    finally:
        await connectors.stop()
        await asyncio.gather(telegram.stop(), hook_receiver.stop(), live_receiver.stop())
        vhosts.delete(vhost)


async def imported_ones_listed_paused(
    http: httpx.AsyncClient, auth: dict[str, str], subscription_id: str
) -> None:
    await eventually(
        lambda: listed_paused(http, auth, "webhooks", "subscription_id", subscription_id),
        what="the imported subscription, paused",
    )
    await eventually(
        lambda: listed_paused(http, auth, "connectors", "connector_id", "tg-imported"),
        what="the imported connector, paused",
    )
