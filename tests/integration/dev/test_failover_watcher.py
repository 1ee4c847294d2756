"""The failover measurement's commit watcher on the real broker: it sees a group's committed
offsets advance without joining the group, and a pause in commits shows as a gap."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from casewire_dev.failover import CommitWatcher

from tests.integration.helpers import producer

pytestmark = pytest.mark.integration

PAUSE_SECONDS = 1.5


async def test_watcher_sees_each_commit_and_a_pause_in_commits_as_a_gap(
    kafka_bootstrap: str, unique: str
) -> None:
    topic, group = f"failover-{unique}", f"failover-group-{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    member = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await member.start()
    partition = TopicPartition(topic, 0)
    member.assign([partition])
    watcher = CommitWatcher(kafka_bootstrap, topic, group, poll_seconds=0.05)
    await watcher.start()
    loop = asyncio.get_running_loop()
    try:
        async with producer(kafka_bootstrap) as kafka:
            for _ in range(12):
                await kafka.send_and_wait(topic, b"m", partition=0)
        started = loop.time()
        for offset in range(1, 13):
            if offset == 7:
                await asyncio.sleep(PAUSE_SECONDS)
            await member.commit({partition: offset})
            await asyncio.sleep(0.15)
        await asyncio.sleep(0.3)
        ended = loop.time()
    finally:
        await watcher.stop()
        await member.stop()
    assert watcher.partitions == [0, 1]
    assert len(watcher.advances[0]) >= 10  # a commit every 0.15 s, read every 0.05 s
    assert watcher.advances[1] == []
    gap = watcher.longest_gap([0], started + 0.5, ended - 0.2)
    assert PAUSE_SECONDS <= gap < PAUSE_SECONDS + 0.5
