"""Two agents press Accept at the same instant, 100 times: exactly one wins each time."""

import asyncio

from tests.agent_service.helpers import Desk, LogWatch

ROUNDS = 100


async def test_simultaneous_accepts_have_exactly_one_winner(desk: Desk, watch: LogWatch) -> None:
    await desk.online("a1", max_chats=100)
    await desk.online("a2", max_chats=100)
    winners: dict[str, int] = {"a1": 0, "a2": 0}
    for n in range(ROUNDS):
        conversation_id = f"race-{n}"
        await desk.request(conversation_id)
        one, two = await asyncio.gather(
            desk.accept(conversation_id, "a1"), desk.accept(conversation_id, "a2")
        )
        assert [one.ok, two.ok].count(True) == 1, (n, one, two)
        loser = two if one.ok else one
        assert loser.code == "already_assigned"
        winner = "a1" if one.ok else "a2"
        winners[winner] += 1
        assert (await desk.state(conversation_id))["agent_id"] == winner
        assert (await desk.close(conversation_id, winner)).ok
    await watch.wait_for("conversation.closed", f"race-{ROUNDS - 1}")
    accepted = watch.of("conversation.accepted")
    assert len(accepted) == ROUNDS
    assert len({e.data["conversation_id"] for e in accepted}) == ROUNDS
    assert sum(winners.values()) == ROUNDS
    assert (
        len(watch.of("command.rejected", reason="already_assigned")) == ROUNDS
    )  # every loser, audited
