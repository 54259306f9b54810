"""The sustained search's steps (tools/bench/runner.py ``next_sustained_rate``), decided
without a system: up by 250 msg/s while steps hold, halved below a first step that misses."""

from tools.bench.runner import SUSTAINED_FLOOR, next_sustained_rate


def search(holds_up_to: float, start: float = 500, ceiling: float = 3000) -> list[float]:
    """The rates tried against a system that holds every rate up to ``holds_up_to``."""
    tried: list[float] = []
    rate: float | None = start
    while rate is not None:
        tried.append(rate)
        rate = next_sustained_rate(rate, rate <= holds_up_to, start, ceiling)
    return tried


def test_steps_go_up_by_250_until_one_misses() -> None:
    assert search(holds_up_to=1250) == [500, 750, 1000, 1250, 1500]


def test_the_search_stops_at_its_ceiling() -> None:
    assert search(holds_up_to=10_000, ceiling=1000) == [500, 750, 1000]


def test_a_missed_first_step_is_halved_until_one_holds() -> None:
    """A three-node cluster on two cores missed 500 msg/s: the report had no sustained figure
    and the scaling run no ratio."""
    assert search(holds_up_to=300) == [500, 250]
    assert search(holds_up_to=100) == [500, 250, 125, 62.5]


def test_below_the_floor_the_search_gives_up() -> None:
    tried = search(holds_up_to=10)
    assert tried == [500, 250, 125, 62.5]
    assert tried[-1] / 2 < SUSTAINED_FLOOR


def test_one_rate_is_held_alone_when_the_search_starts_and_ends_there() -> None:
    """``relaydesk bench --sustained-start 1500 --sustained-max 1500``: one 60 s step, the
    way a change is tried at the rate it is about."""
    assert search(holds_up_to=2000, start=1500, ceiling=1500) == [1500]
    assert search(holds_up_to=1000, start=1500, ceiling=1500) == [1500, 750]
