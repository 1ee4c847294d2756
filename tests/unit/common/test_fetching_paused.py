from aiokafka import TopicPartition
from casewire_common.kafka import fetching_paused

P0, P1, P2 = (TopicPartition("casewire.messages.v1", n) for n in range(3))


class _Consumer:
    """What `fetching_paused` uses of an aiokafka consumer: assignment and pause state."""

    def __init__(self, *assigned: TopicPartition) -> None:
        self.assigned = set(assigned)
        self.paused_now: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused_now |= set(partitions)

    def paused(self) -> set[TopicPartition]:
        return self.paused_now & self.assigned

    def resume(self, *partitions: TopicPartition) -> None:
        assert set(partitions) <= self.assigned, "resuming a partition no longer assigned"
        self.paused_now -= set(partitions)


def test_a_partial_batch_is_processed_with_every_assigned_partition_paused() -> None:
    consumer = _Consumer(P0, P1)
    with fetching_paused(consumer, batch_size=7, max_records=500):
        assert consumer.paused() == {P0, P1}
    assert consumer.paused() == set()


def test_a_full_batch_keeps_fetching_ahead() -> None:
    consumer = _Consumer(P0, P1)
    with fetching_paused(consumer, batch_size=500, max_records=500):
        assert consumer.paused() == set()


def test_partitions_taken_by_a_rebalance_meanwhile_are_not_resumed() -> None:
    consumer = _Consumer(P0, P1)
    with fetching_paused(consumer, batch_size=1, max_records=500):
        consumer.assigned = {P1, P2}  # P0 went to another replica, P2 came (not paused)
    assert consumer.paused() == set()


def test_fetching_resumes_when_the_batch_fails() -> None:
    consumer = _Consumer(P0)
    try:
        with fetching_paused(consumer, batch_size=1, max_records=500):
            raise ConnectionError("PostgreSQL went away")
    except ConnectionError:
        pass
    assert consumer.paused() == set()
