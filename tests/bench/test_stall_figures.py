"""The bench's per-round stall figures: from two readings of a service's metrics (pure), and
the load generator's own collections."""

import gc

from tools.bench.stalls import GC, LAG, OwnCollections, StallMeter


def reading(ticks: dict[str, float], full: tuple[float, float]) -> dict:
    lag = {(f"{LAG}_bucket", "", le): count for le, count in ticks.items()}
    count, pause_s = full
    return {
        **lag,
        (f"{LAG}_count", "", ""): ticks["+Inf"],
        (f"{GC}_count", "2", ""): count,
        (f"{GC}_sum", "2", ""): pause_s,
        (f"{GC}_sum", "0", ""): 0.5,
    }


def test_a_round_reports_its_own_worst_lag_and_full_collections() -> None:
    before = {"gateway": reading({"0.05": 100, "0.1": 100, "0.5": 101, "+Inf": 101}, (4, 2.0))}
    # this round: 200 ticks on time, 3 between 100 and 500 ms late; 2 full collections, 0.3 s
    after = {"gateway": reading({"0.05": 300, "0.1": 300, "0.5": 304, "+Inf": 304}, (6, 2.3))}
    figures = StallMeter.between(before, after)["gateway"]
    assert figures["max_loop_lag_s"] == 0.5
    assert figures["ticks_late_over_100ms"] == 3
    assert figures["full_collections"] == 2
    assert figures["full_collection_pause_ms"] == 300.0
    assert figures["gc_pause_ms"] == 300.0  # young collections took nothing more this round


def test_the_generators_own_collections_are_counted_with_their_pause() -> None:
    own = OwnCollections()
    try:
        before = own.sample()
        gc.collect()  # a full collection of this process, as a long round has
        figures = OwnCollections.between(before, own.sample())
    finally:
        own.close()
    assert figures["full_collections"] == 1
    assert figures["gc_pause_ms"] >= figures["full_collection_pause_ms"] > 0
