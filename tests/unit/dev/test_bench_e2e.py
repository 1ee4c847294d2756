from collections import deque
from datetime import UTC, datetime

import pytest
from casewire_common.messages import CanonicalMessage
from casewire_dev.bench_e2e import _Sender, hop_ms, latencies_ms, message_body
from casewire_dev.bench_runs import BenchError
from casewire_ingest.domain.generic import normalize_generic


def test_every_bench_message_is_a_valid_generic_message_opening_its_own_conversation() -> None:
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)
    bodies = [message_body("tok", index, now) for index in range(50)]
    messages: list[CanonicalMessage] = [normalize_generic(body, now).messages[0] for body in bodies]
    assert len({m.conversation_id for m in messages}) == 50
    assert all(m.direction == "inbound" and "tok" in m.conversation_id for m in messages)


def test_latencies_cover_only_the_measured_window_and_a_missing_event_fails() -> None:
    sent = {"a": 10.0, "b": 16.0, "c": 17.0}
    read = {"a": 10.5, "b": 16.1, "c": 17.25}
    assert latencies_ms(sent, read, measured_from=15.0) == pytest.approx([100.0, 250.0])
    with pytest.raises(BenchError, match="1 of 2"):
        latencies_ms(sent, {"a": 10.5, "b": 16.1}, measured_from=15.0)


def test_a_hop_counts_only_conversations_seen_at_both_ends() -> None:
    start = {"a": 1.0, "b": 2.0, "c": 3.0}
    end = {"a": 1.02, "c": 3.5, "d": 9.0}
    assert hop_ms(start, end, ["a", "b", "c", "d"]) == pytest.approx([20.0, 500.0])


class _RecordingConnection:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, name: str, request: bytes) -> None:
        self.written.append(name)


def test_the_open_loop_sender_queues_requests_when_every_connection_is_busy() -> None:
    sender = _Sender(expected_status=202)
    first, second = _RecordingConnection(), _RecordingConnection()
    sender.idle.extend([first, second])  # type: ignore[list-item]
    for name in ("r1", "r2", "r3", "r4"):
        sender.send(name, name.encode())
    assert (first.written, second.written) == (["r1"], ["r2"])
    assert [name for name, _ in sender.waiting] == ["r3", "r4"]
    sender.on_answer(second, "r2", 202, b"")  # type: ignore[arg-type]
    sender.on_answer(first, "r1", 500, b"boom")  # type: ignore[arg-type]
    assert (first.written, second.written, sender.waiting) == (["r1", "r4"], ["r2", "r3"], deque())
    sender.on_answer(first, "r4", 202, b"")  # type: ignore[arg-type]
    assert list(sender.idle) == [first]  # type: ignore[comparison-overlap]
    assert sorted(sender.answered) == ["r1", "r2", "r4"]
    assert sender.failures == ["500 boom"]
