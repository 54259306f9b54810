"""A log reader returns the broker's credit several chunks at a time (CreditInBatches in
relaydesk/bus/log_subscription.py), and still reads every entry once, in order."""

import pytest
from rstream.client import Client

from relaydesk.bus import Bus, LogReader
from relaydesk.bus.log_subscription import CREDIT_BATCH, INITIAL_CREDIT
from tests.foundation.test_bus import message_event, read_n

CHUNKS = 40


async def test_credit_goes_back_in_batches_and_every_entry_arrives_once_in_order(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(CHUNKS):  # one confirmed publish each: one chunk each
        await bus.publish(message_event(i))
    returned: list[int] = []
    credit = Client.credit

    async def counted(self: Client, subscription_id: int, amount: int) -> None:
        returned.append(amount)
        await credit(self, subscription_id, amount)

    monkeypatch.setattr(Client, "credit", counted)
    reader = await LogReader(bus, start="first", name="credit-test").open()
    try:
        events = await read_n(reader, CHUNKS)
    finally:
        await reader.close()
    assert [e.envelope.data["message_id"] for e in events] == [f"m{i}" for i in range(CHUNKS)]
    # rstream alone returned one chunk's credit per chunk: 40 frames here
    assert returned and set(returned) == {CREDIT_BATCH}
    assert len(returned) <= CHUNKS // CREDIT_BATCH
    assert CHUNKS - sum(returned) <= INITIAL_CREDIT  # the broker never ran dry for long
