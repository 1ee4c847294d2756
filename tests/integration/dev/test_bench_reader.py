"""The benchmarks' topic reader (`bench_runs.read_topic`) on the real broker: the whole topic
from the beginning, the router's watermarks left out, and only the run's own records when it
is given which those are."""

from __future__ import annotations

import pytest
from casewire_common.events import ROUTER_WATERMARK
from casewire_dev import bench_runs
from casewire_dev import stack as local_stack

from tests.integration.helpers import producer

pytestmark = pytest.mark.integration


async def test_the_reader_keeps_the_runs_records_and_leaves_watermarks_out(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"bench.reader.{unique}"
    await local_stack.create_topics(kafka_bootstrap, partitions=2, names=[topic])
    async with producer(kafka_bootstrap) as kafka:
        for value in (b"ours-1", b"other", b"ours-2"):
            await kafka.send_and_wait(topic, value, key=value)
        await kafka.send_and_wait(
            topic, b"{}", key=b"mark", headers=[("ce_type", ROUTER_WATERMARK.encode())]
        )

    everything = await bench_runs.read_topic(kafka_bootstrap, topic, 3, settle_seconds=0.2)
    ours = await bench_runs.read_topic(
        kafka_bootstrap,
        topic,
        2,
        settle_seconds=0.2,
        keep=lambda record: record.value.startswith(b"ours"),
    )

    assert sorted(record.value for record in everything) == [b"other", b"ours-1", b"ours-2"]
    assert sorted(record.value for record in ours) == [b"ours-1", b"ours-2"]
