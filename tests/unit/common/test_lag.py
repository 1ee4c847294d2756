from aiokafka import TopicPartition
from casewire_common.lag import ConsumerLag, partition_lags
from casewire_common.metrics import new_registry
from prometheus_client import generate_latest

P0, P1, P2 = (TopicPartition("casewire.messages.v1", n) for n in range(3))


class _RebalancedConsumer:
    """An aiokafka consumer as the lag gauge sees it, whose group takes `revoked` away while
    the first committed offset is being read (as a rebalance does between two awaits)."""

    def __init__(self, assigned: set[TopicPartition], revoked: set[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self._revoked = revoked

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def highwater(self, partition: TopicPartition) -> int:
        assert partition in self.assigned, "Partition is not assigned"  # as aiokafka does
        return 100

    async def committed(self, partition: TopicPartition) -> int:
        self.assigned -= self._revoked
        return 40


class _Held:
    def __init__(self, consumer: object) -> None:
        self.consumer = consumer


async def test_a_partition_revoked_while_lag_is_read_is_left_out() -> None:
    consumer = _RebalancedConsumer({P0, P1, P2}, revoked={P1, P2})
    assert await partition_lags(consumer) == [(P0, 60)]


async def test_the_gauge_shows_only_partitions_still_owned_after_a_rebalance() -> None:
    registry = new_registry()
    lag = ConsumerLag(registry, [("router", _Held(_RebalancedConsumer({P0, P1}, {P0})))])
    await lag.refresh()
    text = generate_latest(registry).decode()
    assert 'partition="1"' in text
    assert 'partition="0"' not in text
