import pytest
from casewire_dev.failover import CommitWatcher


def _watcher(advances: dict[int, list[float]]) -> CommitWatcher:
    watcher = CommitWatcher("127.0.0.1:9092", "casewire.messages.v1", "casewire-router")
    watcher.advances = advances
    return watcher


def test_stall_is_the_longest_pause_of_the_given_partitions_within_the_window() -> None:
    watcher = _watcher({0: [1.0, 1.2, 3.4, 3.6], 1: [1.1, 1.3, 1.5, 6.5]})
    assert watcher.longest_gap([0], 1.0, 4.0) == pytest.approx(2.2)
    assert watcher.longest_gap([0, 1], 1.0, 7.0) == pytest.approx(5.0)


def test_a_partition_that_never_advances_pauses_for_the_whole_window() -> None:
    assert _watcher({0: []}).longest_gap([0], 2.0, 5.0) == pytest.approx(3.0)


def test_takeover_ends_after_the_long_pause_not_at_a_late_commit_of_the_killed_owner() -> None:
    # Killed at 10.0: the owner's last commit is seen at 10.05, the survivor's first at 13.5.
    watcher = _watcher({0: [9.8, 10.05, 13.5, 13.7]})
    assert watcher.resumed_at(0, 10.0, 14.0) == pytest.approx(13.5)


def test_every_partition_must_advance_after_a_moment() -> None:
    watcher = _watcher({0: [1.0, 5.0], 1: [1.0, 2.0]})
    assert watcher.all_advanced_after(1.5)
    assert not watcher.all_advanced_after(2.5)
