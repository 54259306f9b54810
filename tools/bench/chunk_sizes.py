"""Entries per chunk of the log under the bench's chat load: what every reader pays per chunk.

    python -m tools.bench.chunk_sizes --rates 200,800,1200 --seconds 10

Starts the whole system on a RabbitMQ node of its own (as tools/bench/cpu_per_message.py),
opens the bench's conversations, and for each rate sends customer messages for ``seconds``
while a probe subscription counts the entries of every chunk the broker delivers. The probe
is one more reader of the log, so run it apart from CPU measurements. This is how the
publisher's batches were found to hold ~2 entries at 800 msg/s (docs/performance.md,
"Paced batches").
"""

import argparse
import asyncio
import statistics
from typing import Any

from rstream import ConsumerOffsetSpecification, MessageContext, OffsetType, schema

from contracts import topology as names
from relaydesk.bus import rstream_frames
from relaydesk.bus.endpoint import StreamEndpoint
from relaydesk.bus.log_subscription import INITIAL_CREDIT, CreditInBatches
from relaydesk.runtime import run_loop
from tools.bench.chat_load import ChatFleet
from tools.bench.sut import SystemUnderTest
from tools.cluster import LocalRabbitCluster


class ChunkProbe(CreditInBatches):
    """A subscription that records each delivered chunk's number of entries."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sizes: list[int] = []

    async def _on_deliver(self, frame: schema.Deliver, subscriber: Any, filter_value: Any) -> None:
        if frame.subscription_id == subscriber.subscription_id:
            self.sizes.append(frame.num_entries)
        await super()._on_deliver(frame, subscriber, filter_value)


async def _ignore(_: bytes, __: MessageContext) -> None:
    return None


async def measure(rates: list[float], seconds: float, conversations: int) -> list[dict[str, Any]]:
    rstream_frames.install()
    cluster = await asyncio.to_thread(LocalRabbitCluster(1).start)
    sut = SystemUnderTest(cluster=cluster)
    results = []
    try:
        running = await sut.start()
        fleet = ChatFleet(running.base_url, running.owner_password, conversations=conversations)
        endpoint = StreamEndpoint.from_urls(running.amqp_url, running.stream_url)
        probe = ChunkProbe(
            endpoint.host,
            endpoint.port,
            username=endpoint.username,
            password=endpoint.password,
            vhost=endpoint.vhost,
            load_balancer_mode=True,
        )
        try:
            await fleet.open()
            await probe.start()
            await probe.subscribe(
                names.LOG_STREAM,
                _ignore,
                offset_specification=ConsumerOffsetSpecification(OffsetType.NEXT),
                initial_credit=INITIAL_CREDIT,
            )
            sequence = 0
            for rate in rates:
                probe.sizes.clear()
                outcome = await fleet.run(rate, seconds, sequence, measure=False)
                sequence += outcome["sent"]
                sizes = list(probe.sizes)
                results.append(
                    {
                        "rate": rate,
                        "sent": outcome["sent"],
                        "chunks": len(sizes),
                        "entries": sum(sizes),
                        "entries_per_chunk": round(sum(sizes) / max(1, len(sizes)), 2),
                        "median": statistics.median(sizes) if sizes else 0,
                    }
                )
                print(results[-1], flush=True)
        finally:
            await probe.close()
            await fleet.close()
    finally:
        await sut.stop()
        await asyncio.to_thread(cluster.stop)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="200,800,1200", help="comma-separated msg/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per rate")
    parser.add_argument("--conversations", type=int, default=200)
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    run_loop(measure(rates, args.seconds, args.conversations))


if __name__ == "__main__":
    main()
