import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from casewire_common.messages import CanonicalMessage
from casewire_dev.bench_e2e import (
    REPLY_DELAY_SECONDS,
    TableSize,
    cost_figures,
    hop_ms,
    latencies_ms,
    message_body,
    storage_figures,
    traffic,
)
from casewire_dev.cpu import CpuUse
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


def test_the_traffic_mixes_openings_replies_and_follow_ups_to_earlier_conversations() -> None:
    begin = datetime(2026, 11, 28, 12, tzinfo=UTC).timestamp()
    load = traffic("tok", begin, 20.0, 400)
    assert len({name for name, _ in load.requests}) == 400
    bodies = [json.loads(request.split(b"\r\n\r\n", 1)[1]) for _, request in load.requests]
    received = datetime.fromtimestamp(begin + 60, UTC)
    messages = [normalize_generic(body, received).messages[0] for body in bodies]
    first_sent = {}
    for message in messages:
        first_sent.setdefault(message.conversation_id, message.sent_at)
    kinds = Counter(
        "reply"
        if m.direction == "outbound"
        else "follow_up"
        if m.text.startswith("Still")
        else "open"
        for m in messages
    )
    # 3 in 10 are replies and 1 in 10 a follow-up, once conversations are old enough to answer.
    assert kinds["open"] == len(load.opened) == len(first_sent)
    assert 100 <= kinds["reply"] <= 120
    assert 30 <= kinds["follow_up"] <= 40
    for message in messages:
        if message.direction == "outbound":
            waited = (message.sent_at - first_sent[message.conversation_id]).total_seconds()
            assert waited >= REPLY_DELAY_SECONDS


def test_cost_figures_are_the_stack_cpu_per_message_all_in_and_per_process() -> None:
    idle = CpuUse(client=0.5, processes={"router": 0.01, "broker": 0.02}, machine=0.6)
    at_200 = CpuUse(client=0.5, processes={"router": 0.3, "broker": 0.1}, machine=1.0)
    figures = cost_figures(idle, {200: at_200})
    assert figures["stack_idle_cores"]["value"] == 0.03
    assert figures["cpu_ms_per_msg_at_200"]["value"] == 2.0
    assert figures["cpu_ms_per_msg_at_200_router"]["value"] == 1.5
    assert figures["idle_cores_broker"]["value"] == 0.02


def test_storage_figures_are_bytes_and_rows_per_message_in_all_and_per_service() -> None:
    sizes = [
        TableSize("router", "messages", 2000, 800_000),
        TableSize("router", "cases", 1000, 400_000),
        TableSize("sla", "clocks", 3000, 600_000),
        TableSize("ingest", "dedup", 2000, 200_000),
    ]
    figures = storage_figures(sizes, 2000)
    assert figures["pg_bytes_per_msg"]["value"] == 1000
    assert figures["pg_rows_per_msg"]["value"] == 4.0
    assert figures["pg_bytes_per_msg_router"]["value"] == 600
    assert figures["pg_bytes_per_msg_ingest"]["value"] == 100
