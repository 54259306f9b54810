"""The ledger's dedupe is bounded (a window of recent ids, relaydesk/dedupe.py) and still
counts a copy once, live and when the same log is folded again (a restart, a replay)."""

from billing_service.ledger import Ledger
from contracts import Envelope
from contracts.plans import PlanCatalogue
from tests.foundation.test_bus import message_event


def fold(log: list[Envelope], limit: int) -> Ledger:
    ledger = Ledger(PlanCatalogue.load(), seen_limit=limit)
    for position, envelope in enumerate(log):
        ledger.apply(envelope, position)
    return ledger


def messages_counted(ledger: Ledger) -> int:
    return sum(u.messages for u in ledger.tenant("acme").usage.values())


def test_the_ids_remembered_are_bounded_and_copies_still_count_once() -> None:
    events = [message_event(n) for n in range(50)]
    log: list[Envelope] = []
    for n, event in enumerate(events):
        log.append(event)
        if n % 3 == 0:
            log.append(event)  # a publisher's retry, close behind its first copy
    ledger = fold(log, limit=8)
    assert messages_counted(ledger) == len(events)
    assert len(ledger._seen) == 8  # not one id per event ever folded
    # a rebuild from the log's start (a restart) or a replay folds to the same counts
    assert messages_counted(fold(log, limit=8)) == len(events)
