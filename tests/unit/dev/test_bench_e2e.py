from datetime import UTC, datetime

import pytest
from casewire_common.messages import CanonicalMessage
from casewire_dev.bench_e2e import hop_ms, latencies_ms, message_body
from casewire_dev.results import BenchError
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
