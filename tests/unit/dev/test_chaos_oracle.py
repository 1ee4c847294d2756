"""The chaos oracle on hand-made captures: for each check, a capture that passes it and one
that fails it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_common import topics
from casewire_common.events import (
    CASE_ASSIGNED,
    CASE_CREATED,
    CASE_MERGED,
    CASE_MESSAGE_ADDED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
    INCIDENT_OPENED,
    ROUTER_WATERMARK,
    SLA_BREACH_RETRACTED,
    SLA_BREACHED,
    CaseEventData,
    CaseSnapshot,
    CaseStatus,
    IncidentData,
    SlaAlertData,
    WatermarkData,
    encode_event,
)
from casewire_dev.chaos.capture import Capture, Record, SentMessage, StoredMessage
from casewire_dev.chaos.oracle import check, contract_policy, parse_duration
from casewire_dev.chaos.verdict import Verdict, format_table, passed, write_results

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
POLICIES = """\
version: 1
calendars:
  - {id: always, always_open: true}
policies:
  - id: chaos
    match: {}
    calendar: always
    first_response: 20s
    next_response: 1h
    resolution: 1h
"""


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Run:
    """A capture built by hand: inputs, stored rows and outputs in the order they are added."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.sent: list[SentMessage] = []
        self.stored: list[StoredMessage] = []
        self.case_events: list[Record] = []
        self.alerts: list[Record] = []
        self.dead_letters: list[Record] = []
        self.capacity = {"amal": 1, "nikos": 2}
        self.policies = POLICIES
        self.metrics = ""
        self.replay: dict[str, object] | None = {"published": 0}
        self.messages_before = self.messages_after = 10
        self.ids_before = self.ids_after = frozenset(f"m{n}" for n in range(10))
        self.expected_rejections: dict[str, int] = {}
        self.versions = True
        self._offsets: Counter[tuple[str, int]] = Counter()
        self._case_versions: Counter[str] = Counter()
        self._opened: dict[str, datetime] = {}
        self._status: dict[str, CaseStatus] = {}

    def send(
        self,
        message_id: str,
        thread: str,
        seconds: float,
        *,
        case: str | None = None,
        direction: str = "inbound",
        needs_case: bool = True,
        stored: bool = True,
    ) -> None:
        """An accepted message, stored in `case` (unless `stored=False`)."""
        self.sent.append(
            SentMessage(
                message_id=message_id,
                platform="x",
                platform_message_id=message_id,
                direction="inbound" if direction == "inbound" else "outbound",
                event="message",
                sent_at=at(seconds),
                accepted_at=at(seconds + 0.1),
                thread=thread,
                needs_case=needs_case and direction == "inbound",
            )
        )
        if stored:
            self.stored.append(StoredMessage(message_id, case, direction, at(seconds)))

    def event(
        self,
        event_type: str,
        case_id: str,
        seconds: float,
        *,
        status: CaseStatus,
        assignee: str | None = None,
        message_id: str | None = None,
        previous_status: CaseStatus | None = None,
        resolved: float | None = None,
        version: int | None = None,
        published: float | None = None,
        partition: int = 0,
        event_id: str | None = None,
        opened: float | None = None,
        merged_case_id: str | None = None,
        merged_into_case_id: str | None = None,
    ) -> Record:
        """One case event; `opened_at` is the time of the case's first event (or `opened`)."""
        self._opened.setdefault(case_id, at(seconds))
        if opened is not None:
            self._opened[case_id] = at(opened)
        self._status[case_id] = status
        self._case_versions[case_id] += 1
        snapshot = CaseSnapshot(
            id=case_id,
            conversation_id=f"x:brand:{case_id}",
            platform="x",
            channel="mention",
            visibility="public",
            status=status,
            priority="P3",
            urgency_score=10,
            team="care",
            assignee=assignee,
            tags=[],
            language="en",
            opened_at=self._opened[case_id],
            first_response_at=None,
            resolved_at=None if resolved is None else at(resolved),
        )
        data = CaseEventData(
            case=snapshot,
            message_id=message_id,
            previous_status=previous_status,
            merged_case_id=merged_case_id,
            merged_into_case_id=merged_into_case_id,
        )
        record = encode_event(
            event_id=event_id or f"ce-{len(self.case_events)}",
            event_type=event_type,
            source="casewire/router",
            subject=case_id,
            time=at(seconds),
            data=data,
        )
        value = json.loads(record.value)
        if self.versions or version is not None:
            value["case"]["version"] = version or self._case_versions[case_id]
        return self._add(
            self.case_events,
            topics.CASE_EVENTS,
            partition,
            case_id,
            record.headers,
            json.dumps(value).encode(),
            seconds if published is None else published,
        )

    def republish(self, record: Record, seconds: float) -> None:
        self._add(
            self.case_events,
            record.topic,
            record.partition,
            record.key,
            record.headers,
            record.value,
            seconds,
        )

    def open_case(
        self, case_id: str, message_id: str, thread: str, seconds: float, agent: str | None = None
    ) -> None:
        """A customer message that opens a case, given to `agent` if one is named."""
        self.send(message_id, thread, seconds, case=case_id)
        self.event(CASE_CREATED, case_id, seconds, status="queued", message_id=message_id)
        if agent is not None:
            self.event(
                CASE_ASSIGNED,
                case_id,
                seconds,
                status="assigned",
                assignee=agent,
                message_id=message_id,
                previous_status="queued",
            )

    def resolve(self, case_id: str, seconds: float, agent: str | None = None) -> None:
        self.event(
            CASE_STATUS_CHANGED,
            case_id,
            seconds,
            status="resolved",
            assignee=agent,
            previous_status=self._status[case_id],
            resolved=seconds,
        )

    def alert(
        self,
        event_type: str,
        case_id: str,
        *,
        seconds: float,
        due: float,
        started: float = 0,
        event_id: str | None = None,
        provisional: bool = False,
        retracts: str | None = None,
    ) -> str:
        event_id = event_id or f"alert-{len(self.alerts)}"
        data = SlaAlertData(
            case_id=case_id,
            policy_id="chaos",
            clock="first_response",
            target_seconds=20,
            started_at=at(started),
            due_at=at(due),
            team="care",
            priority="P3",
            provisional=provisional,
            retracted_alert_id=retracts,
        )
        record = encode_event(
            event_id=event_id,
            event_type=event_type,
            source="casewire/sla",
            subject=case_id,
            time=at(seconds),
            data=data,
        )
        self._add(self.alerts, topics.SLA_ALERTS, 0, case_id, record.headers, record.value, seconds)
        return event_id

    def watermark(self, seconds: float, marks: dict[int, float], partitions: int = 1) -> None:
        """A router watermark published at `seconds`: partition -> watermark (seconds)."""
        data = WatermarkData(
            topic=topics.MESSAGES,
            partitions=partitions,
            watermarks={partition: at(mark) for partition, mark in marks.items()},
            replica="router-1",
        )
        record = encode_event(
            event_id=f"watermark-{len(self.case_events)}",
            event_type=ROUTER_WATERMARK,
            source="casewire/router",
            subject="router-1",
            time=at(seconds),
            data=data,
        )
        self._add(
            self.case_events,
            topics.CASE_EVENTS,
            0,
            "router-1",
            record.headers,
            record.value,
            seconds,
        )

    def dead_letter(self, topic: str, reason: str, body: bytes = b"{}") -> None:
        headers = {topics.DLQ_REASON_HEADER: reason.encode(), "casewire-source": b"meta"}
        self._add(self.dead_letters, topic, 0, None, headers, body, 1)

    def _add(
        self,
        into: list[Record],
        topic: str,
        partition: int,
        key: str | None,
        headers: dict[str, bytes],
        value: bytes,
        seconds: float,
    ) -> Record:
        offset = self._offsets[(topic, partition)]
        self._offsets[(topic, partition)] += 1
        record = Record(topic, partition, offset, key, headers, value, at(seconds))
        into.append(record)
        return record

    def capture(self) -> Capture:
        policies = self.tmp_path / "policies.yaml"
        policies.write_text(self.policies, "utf-8")
        return Capture(
            seed=1,
            sent=self.sent,
            case_events=self.case_events,
            sla_alerts=self.alerts,
            dead_letters=self.dead_letters,
            stored_messages=self.stored,
            agent_capacity=self.capacity,
            sla_policies=policies,
            sla_metrics=self.metrics,
            replay=self.replay,
            messages_before_replay=self.messages_before,
            messages_after_replay=self.messages_after,
            message_ids_before_replay=self.ids_before,
            message_ids_after_replay=self.ids_after,
            expected_rejections=self.expected_rejections,
        )

    def verdicts(self) -> dict[str, Verdict]:
        return {verdict.name: verdict for verdict in check(self.capture())}

    def row(self, name: str) -> Verdict:
        return self.verdicts()[name]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def answered_run(run: Run) -> Run:
    """One case on thread t1, answered in time by the brand, its gauge in line."""
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.send("r1", "t1", 5, case="c1", direction="outbound")
    run.event(CASE_RESPONDED, "c1", 5, status="assigned", assignee="amal", message_id="r1")
    run.metrics = attainment(met=1, breached=0)
    return run


def attainment(met: int, breached: int) -> str:
    return (
        "# TYPE casewire_sla_attainment_clocks gauge\n"
        f'casewire_sla_attainment_clocks{{clock="first_response",policy="chaos",outcome="met"}}'
        f" {met}\n"
        f'casewire_sla_attainment_clocks{{clock="first_response",policy="chaos",'
        f'outcome="breached"}} {breached}\n'
    )


def test_a_clean_run_passes_every_check(run: Run) -> None:
    answered_run(run)
    verdicts = check(run.capture())
    assert passed(verdicts), format_table(verdicts)
    assert {verdict.name for verdict in verdicts} >= {
        "lost_messages",
        "duplicated_changes",
        "republished_records",
        "over_capacity_moments",
        "false_breaches",
        "missed_breaches",
        "retracted_breaches",
        "provisional_breaches",
        "unexplained_dead_letters",
        "replay_added",
    }


# Messages


def test_an_accepted_message_missing_from_the_store_is_lost(run: Run) -> None:
    answered_run(run)
    run.send("r2", "t1", 6, stored=False, direction="outbound")
    row = run.row("lost_messages")
    assert (row.value, row.ok) == (1, False)
    assert "r2" in row.detail


def test_a_message_stored_twice_is_duplicated(run: Run) -> None:
    answered_run(run)
    assert run.row("duplicated_messages").ok
    run.stored.append(StoredMessage("m1", "c1", "inbound", at(0)))
    row = run.row("duplicated_messages")
    assert (row.value, row.ok) == (1, False)


def test_a_stored_message_nobody_sent_is_unexpected(run: Run) -> None:
    answered_run(run)
    assert run.row("unexpected_messages").ok
    run.stored.append(StoredMessage("ghost", None, "outbound", at(1)))
    assert not run.row("unexpected_messages").ok


def test_edits_and_redeliveries_of_a_message_expect_one_stored_row(run: Run) -> None:
    answered_run(run)
    original = run.sent[0]
    run.sent.append(original)  # the platform delivered it again
    run.sent.append(SentMessage(**{**original.__dict__, "event": "edit"}))
    assert run.row("lost_messages").ok
    assert run.row("duplicated_messages").ok


def test_a_customer_message_in_two_cases_or_in_none_is_flagged(run: Run) -> None:
    answered_run(run)
    assert run.row("inbound_not_in_one_case").ok
    run.open_case("c2", "m2", "t2", 1)
    run.event(CASE_MESSAGE_ADDED, "c2", 2, status="queued", message_id="m1")
    assert run.row("inbound_not_in_one_case").value == 1

    lonely = Run(run.tmp_path)
    lonely.send("m9", "t9", 0, case=None)
    assert not lonely.row("inbound_not_in_one_case").ok


def test_a_stored_case_that_events_do_not_name_is_flagged(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.stored[0] = StoredMessage("m1", "c-other", "inbound", at(0))
    assert not run.row("inbound_not_in_one_case").ok


def test_a_skipped_message_may_stay_out_of_any_open_case(run: Run) -> None:
    run.send("thanks", "t1", 0, case="c1", needs_case=False)
    run.event(CASE_CREATED, "c1", 0, status="no_action", message_id="thanks", resolved=0)
    assert run.row("inbound_not_in_one_case").ok


def test_two_cases_of_one_thread_open_at_once_fail_and_one_after_the_other_pass(
    run: Run,
) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.resolve("c1", 30)
    run.open_case("c2", "m2", "t1", 40)
    assert run.row("threads_with_two_open_cases").ok

    run.open_case("c3", "m3", "t1", 50)  # while c2 is open
    row = run.row("threads_with_two_open_cases")
    assert (row.value, row.ok) == (1, False)
    assert "c2, c3" in row.detail


def test_a_no_action_case_is_never_open_beside_the_threads_case(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.send("thanks", "t1", 5, case="c2", needs_case=False)
    run.event(CASE_CREATED, "c2", 5, status="no_action", message_id="thanks", resolved=5)
    assert run.row("threads_with_two_open_cases").ok


# Case events


def test_versions_in_order_pass_a_gap_fails(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    assert run.row("case_order_violations").ok
    run.event(CASE_STATUS_CHANGED, "c1", 5, status="pending", assignee="amal", version=4)
    row = run.row("case_order_violations")
    assert (row.value, row.ok) == (1, False)
    assert "1, 2, 4" in row.detail


def test_events_out_of_version_order_fail(run: Run) -> None:
    run.send("m1", "t1", 0, case="c1")
    run.event(CASE_CREATED, "c1", 0, status="queued", message_id="m1", version=1)
    run.event(CASE_STATUS_CHANGED, "c1", 2, status="resolved", version=3, resolved=2)
    run.event(CASE_ASSIGNED, "c1", 1, status="assigned", assignee="amal", version=2)
    assert not run.row("case_order_violations").ok


def test_a_case_created_twice_or_never_fails(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.event(CASE_CREATED, "c1", 1, status="queued")
    assert "2 casewire.case.created" in run.row("case_order_violations").detail

    headless = Run(run.tmp_path)
    headless.event(CASE_MESSAGE_ADDED, "c9", 0, status="queued")
    assert not headless.row("case_order_violations").ok


def test_without_versions_valid_status_transitions_pass_and_invalid_ones_fail(run: Run) -> None:
    run.versions = False
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.event(CASE_STATUS_CHANGED, "c1", 5, status="pending", assignee="amal")
    run.resolve("c1", 9, agent="amal")
    assert run.row("case_order_violations").ok, run.row("case_order_violations").detail

    run.event(CASE_STATUS_CHANGED, "c1", 10, status="pending", assignee="amal")  # resolved ->
    row = run.row("case_order_violations")
    assert not row.ok
    assert "resolved -> pending" in row.detail


def test_without_versions_a_previous_status_that_was_not_the_status_fails(run: Run) -> None:
    run.versions = False
    run.open_case("c1", "m1", "t1", 0)
    run.event(CASE_ASSIGNED, "c1", 1, status="assigned", assignee="amal", previous_status="pending")
    assert "previous_status pending" in run.row("case_order_violations").detail


def test_watermarks_and_incidents_are_not_case_events(run: Run) -> None:
    answered_run(run)
    mark = WatermarkData(
        topic=topics.MESSAGES, partitions=1, watermarks={0: at(9)}, replica="router-1"
    )
    incident = IncidentData(
        incident_id="i1",
        topic="outage",
        status="open",
        opened_at=at(9),
        last_seen_at=at(9),
        case_count=1,
        added_case_ids=["c1"],
    )
    for event_type, subject, data in (
        (ROUTER_WATERMARK, "router-1", mark),
        (INCIDENT_OPENED, "i1", incident),
    ):
        record = encode_event(
            event_id=f"{subject}-event",
            event_type=event_type,
            source="casewire/router",
            subject=subject,
            time=at(9),
            data=data,
        )
        run.case_events.append(
            Record(topics.CASE_EVENTS, 0, 99, subject, record.headers, record.value, at(9))
        )
    verdicts = check(run.capture())
    assert passed(verdicts), format_table(verdicts)
    assert {verdict.name: verdict for verdict in verdicts}["cases"].value == 1


def test_a_republished_record_is_counted_not_failed(run: Run) -> None:
    answered_run(run)
    run.republish(run.case_events[0], 30)
    verdicts = {verdict.name: verdict for verdict in check(run.capture())}
    assert verdicts["republished_records"].value == 1
    assert verdicts["duplicated_changes"].ok
    assert verdicts["case_order_violations"].ok
    assert passed(list(verdicts.values()))


def test_one_message_added_twice_under_two_ids_is_a_duplicated_change(run: Run) -> None:
    run.versions = False
    run.open_case("c1", "m1", "t1", 0)
    run.send("m2", "t1", 3, case="c1")
    run.event(CASE_MESSAGE_ADDED, "c1", 3, status="queued", message_id="m2")
    assert run.row("duplicated_changes").ok
    run.event(CASE_MESSAGE_ADDED, "c1", 3, status="queued", message_id="m2")
    row = run.row("duplicated_changes")
    assert (row.value, row.ok) == (1, False)


def test_one_version_under_two_ids_is_a_duplicated_change(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.event(CASE_STATUS_CHANGED, "c1", 5, status="resolved", resolved=5, version=1)
    assert not run.row("duplicated_changes").ok


def test_two_different_records_under_one_id_conflict(run: Run) -> None:
    answered_run(run)
    assert run.row("conflicting_event_ids").ok
    run.event(CASE_STATUS_CHANGED, "c1", 9, status="resolved", resolved=9, event_id="ce-0")
    assert not run.row("conflicting_event_ids").ok


def test_a_record_that_is_not_a_cloudevent_is_undecodable(run: Run) -> None:
    answered_run(run)
    assert run.row("undecodable_records").ok
    run.case_events.append(Record(topics.CASE_EVENTS, 0, 99, "c1", {}, b"{}", at(9)))
    assert not run.row("undecodable_records").ok


# Capacity


def test_an_agent_given_more_cases_than_their_capacity_fails(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    assert run.row("over_capacity_moments").ok
    run.open_case("c2", "m2", "t2", 1, agent="amal")  # capacity 1
    row = run.row("over_capacity_moments")
    assert (row.value, row.ok) == (1, False)
    assert "amal 2/1" in row.detail


def test_a_case_resolved_before_the_next_assignment_frees_the_place(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.resolve("c1", 5, agent="amal")
    run.open_case("c2", "m2", "t2", 6, agent="amal")
    assert run.row("over_capacity_moments").ok


def test_pending_cases_still_count_towards_the_load(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.event(CASE_STATUS_CHANGED, "c1", 2, status="pending", assignee="amal")
    run.open_case("c2", "m2", "t2", 3, agent="amal")
    assert not run.row("over_capacity_moments").ok


def test_capacity_is_replayed_in_publication_order_not_event_time(run: Run) -> None:
    """A resolution at 10 s, then an assignment for a message sent at 5 s that the router
    processed after a lag: by ce_time the agent held two cases, in truth never."""
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.resolve("c1", 10, agent="amal")
    run.send("m2", "t2", 5, case="c2")
    run.event(CASE_CREATED, "c2", 5, status="queued", message_id="m2", published=12)
    run.event(
        CASE_ASSIGNED, "c2", 5, status="assigned", assignee="amal", message_id="m2", published=12
    )
    assert run.row("over_capacity_moments").ok


def test_a_release_and_an_assignment_in_the_same_millisecond_are_no_moment(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.send("m2", "t2", 4, case="c2")
    run.event(CASE_CREATED, "c2", 4, status="queued", message_id="m2", published=5, partition=1)
    run.event(
        CASE_ASSIGNED,
        "c2",
        4,
        status="assigned",
        assignee="amal",
        previous_status="queued",
        published=5,
        partition=1,
    )
    run.resolve("c1", 5, agent="amal")  # published at 5 too, on partition 0
    assert run.row("over_capacity_moments").ok


def test_an_assignee_missing_from_the_agents_file_has_no_room(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="stranger")
    row = run.row("over_capacity_moments")
    assert not row.ok
    assert "not in the agents file" in row.detail


# SLA first_response


def test_a_breach_of_a_case_answered_in_time_is_false(run: Run) -> None:
    answered_run(run)
    run.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    row = run.row("false_breaches")
    assert (row.value, row.ok) == (1, False)
    assert "c1" in row.detail


def test_a_breach_of_a_case_no_event_opened_is_false(run: Run) -> None:
    answered_run(run)
    run.alert(SLA_BREACHED, "c-unknown", seconds=20, due=20)
    row = run.row("false_breaches")
    assert (row.value, row.ok) == (1, False)
    assert "c-unknown (no clock expected" in row.detail


def test_a_retracted_breach_counts_as_not_breached(run: Run) -> None:
    answered_run(run)
    breach = run.alert(SLA_BREACHED, "c1", seconds=140, due=20, provisional=True)
    run.alert(SLA_BREACH_RETRACTED, "c1", seconds=150, due=20, retracts=breach)
    verdicts = run.verdicts()
    assert verdicts["false_breaches"].ok
    assert verdicts["retracted_breaches"].value == 1
    assert verdicts["provisional_breaches"].value == 1
    assert verdicts["unmatched_retractions"].ok


def test_a_retraction_of_no_breach_is_unmatched(run: Run) -> None:
    answered_run(run)
    run.alert(SLA_BREACH_RETRACTED, "c1", seconds=150, due=20, retracts="no-such-alert")
    assert not run.row("unmatched_retractions").ok


def test_a_reply_after_due_at_without_a_breach_is_missed(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.send("r1", "t1", 25, case="c1", direction="outbound")
    run.event(CASE_RESPONDED, "c1", 25, status="queued", message_id="r1")
    row = run.row("missed_breaches")
    assert (row.value, row.ok) == (1, False)

    run.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    assert run.row("missed_breaches").ok
    assert run.row("false_breaches").ok


def test_the_reply_counts_by_its_send_time_not_by_when_it_was_processed(run: Run) -> None:
    """Sent at 19 s (due at 20 s), processed at 60 s: met, whatever the lag."""
    run.open_case("c1", "m1", "t1", 0)
    run.send("r1", "t1", 19, case="c1", direction="outbound")
    run.event(CASE_RESPONDED, "c1", 19, status="queued", message_id="r1", published=60)
    assert run.row("missed_breaches").ok
    run.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    assert not run.row("false_breaches").ok


def test_the_clock_starts_at_the_earliest_customer_message_of_the_case(run: Run) -> None:
    """The case opened on a message sent at 10 s; one sent at 0 s joined it later."""
    run.open_case("c1", "m2", "t1", 10)
    run.send("m1", "t1", 0, case="c1")
    run.event(CASE_MESSAGE_ADDED, "c1", 0, status="queued", message_id="m1", published=11)
    run.send("r1", "t1", 25, case="c1", direction="outbound")  # 25 s after m1
    run.event(CASE_RESPONDED, "c1", 25, status="queued", message_id="r1")
    assert not run.row("missed_breaches").ok


def test_a_reply_in_another_thread_does_not_answer_the_case(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.send("r1", "t2", 5, direction="outbound")
    run.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    run.event(CASE_MESSAGE_ADDED, "c1", 200, status="queued")  # the run went on
    assert run.row("false_breaches").ok
    assert run.row("missed_breaches").ok


def test_an_unanswered_case_must_breach_once_max_hold_has_passed(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.open_case("c2", "m2", "t2", 200)  # the run's last record: 200 s
    row = run.row("missed_breaches")
    assert (row.value, row.ok) == (1, False)  # due 20 s + 120 s hold + grace < 200 s


def test_an_unanswered_case_within_max_hold_is_undecided(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.open_case("c2", "m2", "t2", 60)  # due 20 s, hold until 140 s
    verdicts = run.verdicts()
    assert verdicts["missed_breaches"].ok
    assert "1 undecided" in verdicts["missed_breaches"].detail
    run.alert(SLA_BREACHED, "c1", seconds=61, due=20, provisional=True)
    assert run.row("false_breaches").ok


def test_once_the_low_watermark_passed_due_at_the_breach_cannot_wait_for_max_hold(
    run: Run,
) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.watermark(30, {0: 25, 1: 40}, partitions=2)  # due 20 s: passed on both partitions
    run.open_case("c2", "m2", "t2", 60)  # the run's last record: 60 s, within max_hold
    row = run.row("missed_breaches")
    assert (row.value, row.ok) == (1, False)
    run.alert(SLA_BREACHED, "c1", seconds=30, due=20)
    assert run.row("missed_breaches").ok


def test_a_low_watermark_behind_due_at_leaves_the_breach_undecided(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.watermark(30, {0: 15, 1: 40}, partitions=2)  # partition 0 still before due 20 s
    run.watermark(31, {1: 50}, partitions=2)
    run.open_case("c2", "m2", "t2", 60)
    assert run.row("missed_breaches").ok

    unmarked = Run(run.tmp_path)
    unmarked.open_case("c1", "m1", "t1", 0)
    unmarked.watermark(30, {1: 40}, partitions=2)  # partition 0 never marked
    unmarked.open_case("c2", "m2", "t2", 60)
    assert unmarked.row("missed_breaches").ok


def test_a_breach_before_due_at_of_an_unanswered_case_is_false(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.alert(SLA_BREACHED, "c1", seconds=10, due=10)  # fired at 10 s, due at 20 s
    assert not run.row("false_breaches").ok


def test_a_case_resolved_unanswered_before_due_at_is_not_breached(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.resolve("c1", 10, agent="amal")
    run.event(CASE_MESSAGE_ADDED, "c9", 300, status="queued")  # the run went on
    assert run.row("missed_breaches").ok
    run.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    assert not run.row("false_breaches").ok


def test_a_case_reopened_unanswered_starts_a_new_clock(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.resolve("c1", 10, agent="amal")
    run.send("m2", "t1", 50, case="c1")
    run.event(CASE_STATUS_CHANGED, "c1", 50, status="reopened", message_id="m2")
    run.send("r1", "t1", 80, case="c1", direction="outbound")  # 30 s after the reopening
    run.event(CASE_RESPONDED, "c1", 80, status="reopened", message_id="r1")
    assert not run.row("missed_breaches").ok
    run.alert(SLA_BREACHED, "c1", seconds=70, due=70, started=50)
    assert run.row("missed_breaches").ok


def test_replies_belong_to_the_threads_latest_case_opened_before_them(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.send("r1", "t1", 5, case="c1", direction="outbound")
    run.resolve("c1", 10, agent="amal")
    run.open_case("c2", "m2", "t1", 400)
    run.send("r2", "t1", 410, case="c2", direction="outbound")
    verdicts = run.verdicts()
    assert verdicts["missed_breaches"].ok
    assert verdicts["false_breaches"].ok
    assert "2 met" in verdicts["false_breaches"].detail


def test_two_breaches_of_one_clock_under_two_ids_are_duplicates(run: Run) -> None:
    run.open_case("c1", "m1", "t1", 0)
    run.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    assert run.row("duplicated_alerts").ok
    run.alert(SLA_BREACHED, "c1", seconds=21, due=20)
    assert not run.row("duplicated_alerts").ok


def test_the_attainment_gauge_must_match_the_oracle(run: Run) -> None:
    answered_run(run)
    assert run.row("attainment_mismatched_clocks").ok
    run.metrics = attainment(met=0, breached=1)
    row = run.row("attainment_mismatched_clocks")
    assert (row.value, row.ok) == (2, False)


def test_attainment_counts_only_clocks_ended_by_a_reply(run: Run) -> None:
    answered_run(run)
    run.open_case("c2", "m2", "t2", 1)  # never answered
    run.send("r3", "t3", 2, direction="outbound")  # no case to answer
    run.open_case("c3", "m3", "t3", 10)
    run.send("r4", "t3", 40, case="c3", direction="outbound")  # 30 s after: breached
    run.event(CASE_RESPONDED, "c3", 40, status="queued", message_id="r4")
    run.alert(SLA_BREACHED, "c3", seconds=30, due=30, started=10)
    run.alert(SLA_BREACHED, "c2", seconds=21, due=21, started=1)
    run.event(CASE_MESSAGE_ADDED, "c9", 300, status="queued")  # the run went on
    run.metrics = attainment(met=1, breached=1)
    verdicts = run.verdicts()
    assert verdicts["attainment_mismatched_clocks"].ok, verdicts["attainment_mismatched_clocks"]
    assert verdicts["missed_breaches"].ok
    assert verdicts["false_breaches"].ok


def test_a_missing_attainment_gauge_fails(run: Run) -> None:
    answered_run(run)
    run.metrics = "# TYPE casewire_sla_breaches_total counter\n"
    row = run.row("attainment_mismatched_clocks")
    assert not row.ok
    assert "no casewire_sla_attainment_clocks" in row.detail
    run.metrics = "connection refused {"  # not an exposition at all
    assert not run.row("attainment_mismatched_clocks").ok


def test_a_policy_file_beyond_the_oracle_fails_the_sla_rows(run: Run) -> None:
    answered_run(run)
    run.policies = POLICIES.replace("always_open: true", "timezone: UTC, hours: {mon: []}")
    verdicts = run.verdicts()
    assert not verdicts["false_breaches"].ok
    assert "not always open" in verdicts["missed_breaches"].detail


def test_the_contract_policy_is_read_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES, "utf-8")
    assert contract_policy(path).first_response == timedelta(seconds=20)
    path.write_text(POLICIES.replace("match: {}", "match: {priority: [P1]}"), "utf-8")
    with pytest.raises(ValueError, match="does not match every case"):
        contract_policy(path)
    path.write_text(POLICIES.replace("  - id: chaos\n", "  - id: chaos\n    additive: true\n"))
    with pytest.raises(ValueError, match="additive"):
        contract_policy(path)


def test_durations_are_read_like_the_policy_file_writes_them() -> None:
    assert parse_duration("20s") == timedelta(seconds=20)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("1d") == timedelta(days=1)
    for bad in ("", "20", "s", "1x", "0s"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


# Merges


def split_and_merged_run(run: Run) -> Run:
    """The customer's two messages on t1 (0 s and 3 s), processed out of order: the later one
    opened c2, the earlier one c1; the router then kept c1 and absorbed c2 into it, moving
    m2's stored row. The brand answered at 6 s."""
    run.send("m2", "t1", 3, case="c1")
    run.event(CASE_CREATED, "c2", 3, status="queued", message_id="m2")
    run.send("m1", "t1", 0, case="c1")
    run.event(CASE_CREATED, "c1", 4, status="queued", message_id="m1", opened=0)
    run.event(CASE_MERGED, "c1", 5, status="queued", merged_case_id="c2")
    run.event(
        CASE_MERGED,
        "c2",
        5,
        status="resolved",
        resolved=5,
        previous_status="queued",
        merged_into_case_id="c1",
    )
    run.send("r1", "t1", 6, case="c1", direction="outbound")
    run.event(CASE_RESPONDED, "c1", 6, status="queued", message_id="r1")
    run.metrics = attainment(met=1, breached=0)
    return run


def test_an_absorbed_case_hands_its_messages_and_its_clock_to_the_kept_case(run: Run) -> None:
    split_and_merged_run(run)
    verdicts = check(run.capture())
    assert passed(verdicts), format_table(verdicts)
    assert "1 clocks: 1 met" in run.row("false_breaches").detail


def test_the_kept_case_clock_starts_at_the_earliest_message_of_the_absorbed_case(
    run: Run,
) -> None:
    # The absorbed case held the earlier message this time: the kept case's clock runs from it.
    run.send("m1", "t1", 0, case="c1")
    run.event(CASE_CREATED, "c2", 1, status="queued", message_id="m1", opened=0)
    run.send("m2", "t1", 3, case="c1")
    run.event(CASE_CREATED, "c1", 3, status="queued", message_id="m2")
    run.event(CASE_MERGED, "c1", 4, status="queued", merged_case_id="c2", opened=0)
    run.event(CASE_MERGED, "c2", 4, status="resolved", resolved=4, merged_into_case_id="c1")
    run.send("r1", "t1", 21, case="c1", direction="outbound")  # 21 s after m1: late
    run.event(CASE_RESPONDED, "c1", 21, status="queued", message_id="r1")
    run.metrics = attainment(met=0, breached=1)
    assert not run.row("missed_breaches").ok  # due at 20 s, from m1: a breach must stand
    run.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    assert run.row("missed_breaches").ok
    assert run.row("attainment_mismatched_clocks").ok


def test_a_breach_of_an_absorbed_case_must_be_retracted(run: Run) -> None:
    split_and_merged_run(run)
    breach = run.alert(SLA_BREACHED, "c2", seconds=23, due=23, started=3)
    row = run.row("false_breaches")
    assert (row.value, row.ok) == (1, False)
    run.alert(SLA_BREACH_RETRACTED, "c2", seconds=24, due=23, started=3, retracts=breach)
    assert run.row("false_breaches").ok


# Dead letters and replay


def test_dead_letters_are_explained_by_the_rejections_the_workload_meant(run: Run) -> None:
    answered_run(run)
    run.expected_rejections = {"invalid_item": 1, "unsupported_body": 2}
    run.dead_letter(topics.dlq(topics.RAW), "invalid_item", b"batch-1")
    run.dead_letter(topics.dlq(topics.RAW), "invalid_item", b"batch-1")  # retried after a 503
    run.dead_letter(topics.dlq(topics.RAW), "unsupported_body")
    assert run.row("unexplained_dead_letters").ok

    run.dead_letter(topics.dlq(topics.RAW), "invalid_item", b"batch-2")  # one more than meant
    run.dead_letter(topics.dlq(topics.RAW), "malformed_json")  # never meant
    run.dead_letter(topics.dlq(topics.MESSAGES), "invalid_message")  # downstream: never
    row = run.row("unexplained_dead_letters")
    assert (row.value, row.ok) == (3, False)
    assert "invalid_message" in row.detail


def test_a_replay_that_publishes_a_new_message_fails_and_a_missing_replay_fails(run: Run) -> None:
    answered_run(run)
    assert run.row("replay_added").ok
    run.messages_after = 12
    run.ids_after = run.ids_before | {"m-new-1", "m-new-2"}
    row = run.row("replay_added")
    assert (row.value, row.ok) == (2, False)
    assert "m-new-1" in row.detail
    run.replay = None
    assert "no replay" in run.row("replay_added").detail


def test_a_replay_that_republishes_an_already_published_message_passes_and_says_so(
    run: Run,
) -> None:
    # The ingest was killed after publishing m3 and before committing its dedup marker: the
    # replay publishes it again, under the same id (the router ignores it).
    answered_run(run)
    run.messages_after = 11
    run.replay = {"published": 1}
    row = run.row("replay_added")
    assert (row.value, row.ok) == (0, True)
    assert "1 republished" in row.detail


# The verdict table and results


def test_results_are_written_as_name_value_unit(tmp_path: Path) -> None:
    verdicts = [
        Verdict("lost_messages", 0, "messages", True),
        Verdict("takeover_s", 4.25, "s", None),
        Verdict("false_breaches", 2, "clocks", False, "c1; c2"),
    ]
    path = tmp_path / "chaos" / "results.json"
    write_results(verdicts, path)
    assert json.loads(path.read_text("utf-8")) == {
        "lost_messages": {"value": 0, "unit": "messages"},
        "takeover_s": {"value": 4.25, "unit": "s"},
        "false_breaches": {"value": 2, "unit": "clocks"},
    }
    assert not passed(verdicts)
    table = format_table(verdicts).splitlines()
    assert table[0].split() == ["check", "value", "unit", "verdict", "detail"]
    assert table[3].split() == ["takeover_s", "4.25", "s", "info"]
    assert table[4].split() == ["false_breaches", "2", "clocks", "FAIL", "c1;", "c2"]


def test_a_confirmed_breach_retracted_by_a_reply_ingest_had_long_before_is_a_page_in_error(
    run: Run,
) -> None:
    answered_run(run)  # the reply reached ingest at 5.1 s, due at 20 s
    breach = run.alert(SLA_BREACHED, "c1", seconds=20, due=20)  # fired as confirmed
    run.alert(SLA_BREACH_RETRACTED, "c1", seconds=60, due=20, retracts=breach)
    row = run.row("breaches_paged_in_error")
    assert (row.value, row.ok) == (1, False)
    assert run.row("false_breaches").ok  # the final answer is right: it was retracted


def test_a_provisional_breach_or_one_racing_its_reply_is_no_page_in_error(
    run: Run, tmp_path: Path
) -> None:
    answered_run(run)
    breach = run.alert(SLA_BREACHED, "c1", seconds=140, due=20, provisional=True)
    run.alert(SLA_BREACH_RETRACTED, "c1", seconds=150, due=20, retracts=breach)
    assert run.row("breaches_paged_in_error").ok

    racing = Run(tmp_path)
    racing.open_case("c1", "m1", "t1", 0, agent="amal")
    racing.send("r1", "t1", 19.5, case="c1", direction="outbound")  # at ingest 19.6 s
    racing.event(CASE_RESPONDED, "c1", 19.5, status="assigned", assignee="amal", message_id="r1")
    racing.metrics = attainment(met=1, breached=0)
    breach = racing.alert(SLA_BREACHED, "c1", seconds=20, due=20)
    racing.alert(SLA_BREACH_RETRACTED, "c1", seconds=21, due=20, retracts=breach)
    assert racing.row("breaches_paged_in_error").ok


def test_a_breach_before_the_reply_could_be_linked_to_its_case_is_no_page_in_error(
    run: Run,
) -> None:
    """The reply reached ingest in time, but the customer message it answers (sent before it,
    on its thread) only after the deadline (the platform was still retrying it): until then
    nothing tied the reply to the case, and no watermark could have held the breach."""
    run.open_case("c1", "m1", "t1", 0, agent="amal")
    run.send("m2", "t1", 3, case="c1")
    late = run.sent[-1]
    run.sent[-1] = replace(late, accepted_at=late.sent_at + timedelta(seconds=40))
    run.send("r1", "t1", 5, case="c1", direction="outbound")  # at ingest 5.1 s
    breach = run.alert(SLA_BREACHED, "c1", seconds=20, due=20)  # fired as confirmed
    run.event(CASE_MESSAGE_ADDED, "c1", 3, status="assigned", assignee="amal", message_id="m2")
    run.event(CASE_RESPONDED, "c1", 5, status="assigned", assignee="amal", message_id="r1")
    run.alert(SLA_BREACH_RETRACTED, "c1", seconds=44, due=20, retracts=breach)
    run.metrics = attainment(met=1, breached=0)
    row = run.row("breaches_paged_in_error")
    assert (row.value, row.ok) == (0, True), row.detail
