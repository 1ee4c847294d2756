"""The chaos run's oracle: every output of the run checked against the accepted inputs.

`check(capture)` reads only the `Capture` and returns one `Verdict` per check. It shares no
code with the services it checks: it decodes the published contract (`casewire_common.events`),
parses the SLA policy file itself and computes deadlines from it.

What each check holds the outputs to, where the contract leaves a choice:

- Messages: every accepted message (`event: message`; edits and deletes update a stored row)
  is a row of the router's message store, once. A stored row nobody sent is reported too.
  A customer message belongs to the case whose `created` or `message_added` event names it;
  one the workload says needs a case belongs to exactly one, the one its stored row names.
- Merges: a case that receives `casewire.case.merged` with `merged_into_case_id` is absorbed
  (one reply chain of one customer, split by processing order): its customer messages belong
  to the kept case from then on (every check sees them in that one case), it has no
  first_response clock of its own, and it is not a case of its threads.
- Threads: a case is open, in event time, from its `opened_at` (or the event time of the
  event that reopened it) until its `resolved_at`; two cases holding customer messages of one
  workload thread must never be open at the same instant.
- Order: case events are the `casewire.case.*` records (incidents and router watermarks are
  not); a republished record (a `ce_id` seen before) is counted and otherwise ignored, and two
  copies of one `ce_id` that differ are a conflict. When every event of a case carries
  `case.version` (≥ 1), the case's events, in partition order, must be versions 1, 2, 3, …
  with `casewire.case.created` first; without versions, each status must follow from the one
  before (and `previous_status` must be it). A distinct change emitted twice is a second
  `ce_id` for the same case version, or for the same message's `created`, `message_added`,
  `responded` or `merged` on one case.
- Capacity: an agent holds a case while a snapshot names them as assignee and the case is
  not resolved or no_action (pending counts, as the router counts load). The holdings are
  replayed per case in version order and across cases in the order the router published them
  (the Kafka timestamp of an event's first copy), not by `ce_time`: the `ce_time` of a
  message's events is the message's `sent_at`, so after a lag an assignment made after a
  resolution carries an earlier `ce_time` than it and a `ce_time` replay counts moments that
  never happened. The single outbox relay publishes in commit order (every change of load
  locks the agents), so publication order is the order of the changes; within one
  millisecond the releases are applied first, so a tie never invents a moment.
- SLA, first_response: the policy file must give every case one contract (the first policy
  that is not additive matches `{}`), on an always-open calendar; anything else is reported
  as a failed row, not guessed. A case that opens (not created as no_action) starts a clock
  at its first customer message (the earliest `sent_at` of the needs-case messages in it,
  those of the cases it absorbed included),
  due `first_response` later. The clock ends at the first brand reply (an outbound message
  of one of the case's threads, sent no earlier than the opening and before the next case
  of those threads opened) or when the case is closed, whichever is first; it is breached iff
  it ends after `due_at`, or never ends and its breach must have been published by the end
  of the run (the last record read): a breach is due at `due_at` once the router's low
  watermark (the least, over the messages topic's partitions, of the latest
  `casewire.router.watermark` of each) has passed `due_at`, and at `due_at` + `max_hold`
  whatever the watermark, each with a few seconds to be delivered. Until then the outcome is
  not decided and either answer passes. A case closed unanswered and reopened starts a new
  clock at the reopening. A breach retracted by `casewire.sla.breach_retracted` counts as not
  breached. The attainment gauge counts, as documented, the clocks ended by the reply they
  waited for (met iff the reply was sent by `due_at`): it must show the oracle's counts of
  those for the contract policy.
- Alert ids: copies of one `ce_id` must be equal (a republish), and a clock's breach, each of
  its warning fractions and a retraction of one breach each have one `ce_id`.
- Dead letters: each must be on `casewire.raw.v1.dlq` with a reason the workload meant to
  provoke; `expected_rejections` bounds, per reason, how many distinct bodies may be there
  (a body dead-lettered again, retried after a 5xx, is the same input).
- Replay: no message id appears on `casewire.messages.v1` after the replay that was not
  there before it. A message published again (published, then the ingest was killed before
  its dedup marker committed: the replay publishes it again, and the router ignores it) is
  reported, not failed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml
from casewire_common import topics
from casewire_common.events import (
    CASE_CREATED,
    CASE_MERGED,
    CASE_MESSAGE_ADDED,
    CASE_RESPONDED,
    ROUTER_WATERMARK,
    SLA_BREACH_RETRACTED,
    SLA_BREACHED,
    SLA_WARNING,
    CaseEventData,
    CaseSnapshot,
    DecodedEvent,
    SlaAlertData,
    WatermarkData,
    decode_event,
)
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from casewire_dev.chaos.capture import Capture, Record, SentMessage, StoredMessage
from casewire_dev.chaos.verdict import Verdict

DEFAULT_MAX_HOLD = timedelta(minutes=2)  # the SLA service's default `max_hold`
# How long a breach may take to be published once it is due (timer poll, outbox relay).
_DELIVERY_GRACE = timedelta(seconds=10)
ATTAINMENT_GAUGE = "casewire_sla_attainment_clocks"
_SHOWN = 3  # offending ids named in a detail

_CASE_TYPE_PREFIX = "casewire.case."
_CLOSED = frozenset({"resolved", "no_action"})
_NEVER = datetime.max.replace(tzinfo=UTC)
# Events that put a customer message in a case.
_HOLDING_TYPES = frozenset({CASE_CREATED, CASE_MESSAGE_ADDED})
# Events that one message causes at most once on a case.
_ONCE_PER_MESSAGE = frozenset({CASE_CREATED, CASE_MESSAGE_ADDED, CASE_RESPONDED, CASE_MERGED})
# Status changes a case may make (DESIGN.md; the router's API and message paths).
_TRANSITIONS: Mapping[str, frozenset[str]] = {
    "queued": frozenset({"assigned", "resolved", "no_action"}),
    "assigned": frozenset({"pending", "queued", "resolved", "no_action"}),
    "pending": frozenset({"assigned", "queued", "resolved", "no_action"}),
    "reopened": frozenset({"assigned", "resolved", "no_action"}),
    "resolved": frozenset({"reopened"}),
    "no_action": frozenset({"reopened"}),
}
_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}

Outcome = Literal["met", "breached", "undecided", "running"]


@dataclass(frozen=True)
class CaseEvent:
    """The first copy of one case event."""

    id: str
    type: str
    time: datetime  # ce_time
    published: datetime  # Kafka timestamp of the first copy
    partition: int
    offset: int
    data: CaseEventData
    version: int | None  # `case.version` when the router counts them (≥ 1)

    @property
    def case(self) -> CaseSnapshot:
        return self.data.case


@dataclass(frozen=True)
class Alert:
    """The first copy of one SLA alert."""

    id: str
    type: str
    data: SlaAlertData


@dataclass(frozen=True)
class Distinct:
    """A topic's records read once per `ce_id`."""

    first: list[tuple[Record, DecodedEvent]]  # first copy of each id, by partition and offset
    republished: int  # copies of an id already seen
    conflicting: list[str]  # ids whose copies differ
    undecodable: list[str]  # records that are not CloudEvents (topic/partition/offset)


@dataclass(frozen=True)
class ContractPolicy:
    """The one contract of the run's policy file."""

    id: str
    first_response: timedelta


@dataclass(frozen=True)
class ExpectedClock:
    """A first_response clock as the oracle computes it from the inputs."""

    case_id: str
    started_at: datetime
    due_at: datetime
    ended_at: datetime | None  # first reply, or closing; None while it runs
    outcome: Outcome
    answered: bool = False  # ended by the reply it waited for
    threads: tuple[str, ...] = ()  # the workload's threads of the case


@dataclass(frozen=True)
class BreachDeadlines:
    """By when the breach of a clock that never ended must have been published."""

    horizon: datetime  # the last record of the run
    max_hold: timedelta
    # The router's low watermark as it rose: when each rise was published, and to what.
    published: Sequence[datetime] = ()
    lows: Sequence[datetime] = ()

    def must_have_fired(self, due: datetime) -> bool:
        latest = due + self.max_hold
        rise = bisect_left(self.lows, due)
        if rise < len(self.lows):
            latest = min(latest, max(due, self.published[rise]))
        return latest + _DELIVERY_GRACE <= self.horizon


def check(capture: Capture, *, max_hold: timedelta = DEFAULT_MAX_HOLD) -> list[Verdict]:
    """Every check of the run, in the order of the verdict table."""
    case_records = distinct(capture.case_events)
    alert_records = distinct(capture.sla_alerts)
    histories, bad_case_events = case_histories(case_records)
    alerts, bad_alerts = sla_alerts(alert_records)
    accepted = accepted_messages(capture.sent)
    absorbed = absorbed_cases(histories)
    membership = case_membership(histories, absorbed)
    horizon = max(
        (record.timestamp for record, _ in case_records.first + alert_records.first),
        default=max((message.accepted_at for message in capture.sent), default=_NEVER),
    )
    published, lows, bad_watermarks = low_watermarks(case_records)
    deadlines = BreachDeadlines(horizon, max_hold, published, lows)
    return [
        *message_verdicts(accepted, capture.stored_messages),
        inbound_case_verdict(accepted, capture.stored_messages, membership),
        thread_verdict(accepted, membership, histories),
        order_verdict(histories),
        duplicated_changes_verdict(histories),
        conflicting_ids_verdict(case_records, alert_records),
        undecodable_verdict(
            case_records, alert_records, bad_case_events + bad_alerts + bad_watermarks
        ),
        capacity_verdict(histories, capture.agent_capacity),
        *sla_verdicts(capture, histories, accepted, membership, alerts, deadlines, absorbed),
        dead_letter_verdict(capture.dead_letters, capture.expected_rejections),
        replay_verdict(capture),
        *reported(capture, accepted, histories, case_records, alert_records),
    ]


# Reading the outputs


def distinct(records: Sequence[Record]) -> Distinct:
    """The records of a CloudEvents topic, one per `ce_id` (its earliest copy)."""
    copies: dict[str, list[tuple[Record, DecodedEvent]]] = {}
    undecodable = []
    for record in records:
        key = None if record.key is None else record.key.encode()
        try:
            event = decode_event(record.headers, record.value, key)
        except ValueError:
            undecodable.append(f"{record.topic}/{record.partition}/{record.offset}")
            continue
        copies.setdefault(event.id, []).append((record, event))
    first = []
    conflicting = []
    for event_id, group in copies.items():
        group.sort(key=lambda pair: (pair[0].timestamp, pair[0].offset))
        first.append(group[0])
        if len({record.value for record, _ in group}) > 1 and (
            len({_content(event) for _, event in group}) > 1
        ):
            conflicting.append(event_id)
    first.sort(key=lambda pair: (pair[0].partition, pair[0].offset))
    republished = len(records) - len(undecodable) - len(copies)
    return Distinct(first, republished, conflicting, undecodable)


def _content(event: DecodedEvent) -> str:
    return repr((event.type, event.subject, sorted(event.data.items())))


def case_histories(records: Distinct) -> tuple[dict[str, list[CaseEvent]], list[str]]:
    """Each case's events in publication order (its partition's offsets), and the ids of case
    events whose data is not a case event."""
    histories: dict[str, list[CaseEvent]] = defaultdict(list)
    invalid = []
    for record, event in records.first:
        if not event.type.startswith(_CASE_TYPE_PREFIX):
            continue  # incidents, router watermarks
        try:
            data = CaseEventData.model_validate(event.data)
        except ValidationError:
            invalid.append(event.id)
            continue
        version = event.data.get("case", {}).get("version")
        histories[data.case.id].append(
            CaseEvent(
                id=event.id,
                type=event.type,
                time=event.time or record.timestamp,
                published=record.timestamp,
                partition=record.partition,
                offset=record.offset,
                data=data,
                version=version if isinstance(version, int) and version >= 1 else None,
            )
        )
    return dict(histories), invalid


def sla_alerts(records: Distinct) -> tuple[list[Alert], list[str]]:
    """The SLA alerts, and the ids of those whose data is not an alert's."""
    alerts = []
    invalid = []
    for _, event in records.first:
        try:
            data = SlaAlertData.model_validate(event.data)
        except ValidationError:
            invalid.append(event.id)
            continue
        alerts.append(Alert(event.id, event.type, data))
    return alerts, invalid


def low_watermarks(records: Distinct) -> tuple[list[datetime], list[datetime], list[str]]:
    """The router's low watermark over the run: when it rose (the publication of the mark
    that raised it) and to what, once every partition of the messages topic had a mark; and
    the ids of watermark records whose data is not a watermark's."""
    marks = sorted(
        (
            (record.timestamp, event)
            for record, event in records.first
            if event.type == ROUTER_WATERMARK
        ),
        key=lambda mark: mark[0],
    )
    latest: dict[int, datetime] = {}
    published: list[datetime] = []
    lows: list[datetime] = []
    invalid = []
    for at, event in marks:
        try:
            data = WatermarkData.model_validate(event.data)
        except ValidationError:
            invalid.append(event.id)
            continue
        for partition, instant in data.watermarks.items():
            latest[partition] = max(latest.get(partition, instant), instant)
        if any(partition not in latest for partition in range(data.partitions)):
            continue
        low = min(latest[partition] for partition in range(data.partitions))
        if not lows or low > lows[-1]:
            published.append(at)
            lows.append(low)
    return published, lows, invalid


def accepted_messages(sent: Sequence[SentMessage]) -> dict[str, SentMessage]:
    """The accepted messages (not their edits and deletes), by canonical id, once each."""
    accepted: dict[str, SentMessage] = {}
    for message in sent:
        if message.event == "message":
            accepted.setdefault(message.message_id, message)
    return accepted


def absorbed_cases(histories: Mapping[str, Sequence[CaseEvent]]) -> dict[str, str]:
    """Absorbed case -> the case that kept its messages (at the end of a chain of merges)."""
    into = {
        case_id: event.data.merged_into_case_id
        for case_id, history in histories.items()
        for event in history
        if event.type == CASE_MERGED and event.data.merged_into_case_id is not None
    }
    kept = {}
    for case_id in into:
        seen = {case_id}
        target = into[case_id]
        while target in into and target not in seen:  # a cycle stops where it closes
            seen.add(target)
            target = into[target]
        kept[case_id] = target
    return kept


def case_membership(
    histories: Mapping[str, Sequence[CaseEvent]], absorbed: Mapping[str, str] | None = None
) -> dict[str, set[str]]:
    """Message id -> the cases whose events put it in them; an absorbed case's messages are
    the kept case's."""
    absorbed = absorbed or {}
    membership: dict[str, set[str]] = defaultdict(set)
    for case_id, history in histories.items():
        for event in history:
            if event.type in _HOLDING_TYPES and event.data.message_id is not None:
                membership[event.data.message_id].add(absorbed.get(case_id, case_id))
    return membership


def open_intervals(history: Sequence[CaseEvent]) -> list[tuple[datetime, datetime]]:
    """When the case was open, in event time: [opened or reopened, resolved_at)."""
    intervals = []
    start: datetime | None = None
    for event in history:
        is_open = event.case.status not in _CLOSED
        if is_open and start is None:
            start = event.case.opened_at if event.type == CASE_CREATED else event.time
        elif not is_open and start is not None:
            intervals.append((start, event.case.resolved_at or event.time))
            start = None
    if start is not None:
        intervals.append((start, _NEVER))
    return intervals


# Messages and threads


def message_verdicts(
    accepted: Mapping[str, SentMessage], stored: Sequence[StoredMessage]
) -> list[Verdict]:
    counts = Counter(row.message_id for row in stored)
    lost = sorted(set(accepted) - set(counts))
    duplicated = sorted(message_id for message_id, count in counts.items() if count > 1)
    unexpected = sorted(set(counts) - set(accepted))
    extra_rows = sum(counts[message_id] - 1 for message_id in duplicated)
    return [
        Verdict(
            "lost_messages",
            len(lost),
            "messages",
            not lost,
            _named(lost, "not stored") or f"{len(accepted)} accepted, all stored",
        ),
        Verdict("duplicated_messages", extra_rows, "messages", not duplicated, _named(duplicated)),
        Verdict(
            "unexpected_messages",
            len(unexpected),
            "messages",
            not unexpected,
            _named(unexpected, "stored, never accepted"),
        ),
    ]


def inbound_case_verdict(
    accepted: Mapping[str, SentMessage],
    stored: Sequence[StoredMessage],
    membership: Mapping[str, set[str]],
) -> Verdict:
    """A customer message is in one case (exactly one when it needs one), the stored one."""
    stored_case = {row.message_id: row.case_id for row in stored}
    wrong = []
    for message_id, message in accepted.items():
        if message.direction != "inbound":
            continue
        cases = membership.get(message_id, set())
        case_id = stored_case.get(message_id)
        if message.needs_case:
            fits = len(cases) == 1 and case_id in cases
        else:
            fits = len(cases) <= 1 and (not cases or case_id is None or case_id in cases)
        if not fits:
            wrong.append(f"{message_id} (events: {sorted(cases) or 'none'}, stored: {case_id})")
    return Verdict("inbound_not_in_one_case", len(wrong), "messages", not wrong, _named(wrong))


def thread_verdict(
    accepted: Mapping[str, SentMessage],
    membership: Mapping[str, set[str]],
    histories: Mapping[str, Sequence[CaseEvent]],
) -> Verdict:
    """No workload thread has two cases open at the same instant (event time)."""
    cases_of_thread: dict[str, set[str]] = defaultdict(set)
    for message_id, message in accepted.items():
        if message.direction == "inbound":
            cases_of_thread[message.thread] |= membership.get(message_id, set())
    overlapping = []
    for thread, cases in sorted(cases_of_thread.items()):
        known = sorted(case_id for case_id in cases if case_id in histories)
        intervals = {case_id: open_intervals(histories[case_id]) for case_id in known}
        pair = next(
            (
                (first, second)
                for index, first in enumerate(known)
                for second in known[index + 1 :]
                if _overlap(intervals[first], intervals[second])
            ),
            None,
        )
        if pair is not None:
            overlapping.append(f"{thread} (cases {pair[0]}, {pair[1]})")
    return Verdict(
        "threads_with_two_open_cases",
        len(overlapping),
        "threads",
        not overlapping,
        _named(overlapping),
    )


def _overlap(
    first: Sequence[tuple[datetime, datetime]], second: Sequence[tuple[datetime, datetime]]
) -> bool:
    return any(
        max(start, other_start) < min(end, other_end)
        for start, end in first
        for other_start, other_end in second
    )


# Case events


def order_problem(history: Sequence[CaseEvent]) -> str | None:
    """What is wrong with the order of one case's events, if anything."""
    created = sum(event.type == CASE_CREATED for event in history)
    if created != 1:
        return f"{created} casewire.case.created"
    if len({event.partition for event in history}) > 1:
        return "events on several partitions"
    versions = [event.version for event in history]
    if all(version is not None for version in versions):
        expected = list(range(1, len(history) + 1))
        if versions != expected or history[0].type != CASE_CREATED:
            return f"versions {_sequence(versions)}, expected 1..{len(history)}"
        return None
    if history[0].type != CASE_CREATED:
        return f"first event {history[0].type}"
    for before, after in pairwise(history):
        previous, status = before.case.status, after.case.status
        if after.data.previous_status is not None and after.data.previous_status != previous:
            return f"{after.id}: previous_status {after.data.previous_status}, was {previous}"
        if status != previous and status not in _TRANSITIONS[previous]:
            return f"{after.id}: {previous} -> {status}"
    return None


def _sequence(versions: Sequence[int | None]) -> str:
    shown = ", ".join(str(version) for version in versions[:8])
    return f"[{shown}{', …' if len(versions) > 8 else ''}]"


def order_verdict(histories: Mapping[str, Sequence[CaseEvent]]) -> Verdict:
    problems = []
    for case_id, history in histories.items():
        problem = order_problem(history)
        if problem is not None:
            problems.append(f"{case_id}: {problem}")
    versioned = sum(
        all(event.version is not None for event in history) for history in histories.values()
    )
    fine = f"{len(histories)} cases ({versioned} with versions, the others by status)"
    return Verdict(
        "case_order_violations",
        len(problems),
        "cases",
        not problems,
        _named(problems) or fine,
    )


def duplicated_changes(history: Sequence[CaseEvent]) -> list[str]:
    """The ids of the case's events that repeat an earlier change under another `ce_id`."""
    seen: set[tuple[Any, ...]] = set()
    repeats = []
    for event in history:
        keys: list[tuple[Any, ...]] = []
        if event.version is not None:
            keys.append(("version", event.version))
        if event.type in _ONCE_PER_MESSAGE and event.data.message_id is not None:
            keys.append((event.type, event.data.message_id))
        if any(key in seen for key in keys):
            repeats.append(event.id)
        seen.update(keys)
    return repeats


def duplicated_changes_verdict(histories: Mapping[str, Sequence[CaseEvent]]) -> Verdict:
    repeats = [
        f"{event_id} (case {case_id})"
        for case_id, history in histories.items()
        for event_id in duplicated_changes(history)
    ]
    return Verdict("duplicated_changes", len(repeats), "events", not repeats, _named(repeats))


def conflicting_ids_verdict(case_records: Distinct, alert_records: Distinct) -> Verdict:
    """Two copies of one `ce_id` must be the same event (a republish), never two events."""
    conflicting = case_records.conflicting + alert_records.conflicting
    return Verdict(
        "conflicting_event_ids", len(conflicting), "ids", not conflicting, _named(conflicting)
    )


def undecodable_verdict(
    case_records: Distinct, alert_records: Distinct, invalid_ids: Sequence[str]
) -> Verdict:
    unreadable = case_records.undecodable + alert_records.undecodable + list(invalid_ids)
    return Verdict(
        "undecodable_records", len(unreadable), "records", not unreadable, _named(unreadable)
    )


def capacity_verdict(
    histories: Mapping[str, Sequence[CaseEvent]], capacity: Mapping[str, int]
) -> Verdict:
    """Replay who holds which case, in publication order, and count the moments an agent
    held more open cases than their capacity."""
    # (published, 0 = release / 1 = take, agent, change, case, event)
    steps: list[tuple[datetime, int, str, int, str, str]] = []
    for case_id, history in histories.items():
        holder: str | None = None
        at = datetime.min.replace(tzinfo=UTC)
        for event in history:
            at = max(at, event.published)  # a case's changes never go back in time
            now = event.case.assignee if event.case.status not in _CLOSED else None
            if now == holder:
                continue
            if holder is not None:
                steps.append((at, 0, holder, -1, case_id, event.id))
            if now is not None:
                steps.append((at, 1, now, 1, case_id, event.id))
            holder = now
    steps.sort(key=lambda step: (step[0], step[1]))
    load: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    moments = []
    for _, _, agent, change, case_id, event_id in steps:
        load[agent] += change
        peak[agent] = max(peak[agent], load[agent])
        limit = capacity.get(agent, 0)
        if change > 0 and load[agent] > limit:
            known = "" if agent in capacity else ", not in the agents file"
            moments.append(f"{agent} {load[agent]}/{limit}{known} at {event_id} (case {case_id})")
    busiest = ", ".join(
        f"{agent} {count}/{capacity.get(agent, 0)}" for agent, count in peak.most_common(_SHOWN)
    )
    return Verdict(
        "over_capacity_moments",
        len(moments),
        "moments",
        not moments,
        _named(moments) or f"peak loads: {busiest or 'no assignment'}",
    )


# SLA


def contract_policy(path: Path) -> ContractPolicy:
    """The single contract of a policy file the oracle can compute deadlines for: the first
    policy that is not additive matches every case and counts wall-clock time. Raises
    ValueError for anything else."""
    document = yaml.safe_load(path.read_text("utf-8"))
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a policy file")
    policies = document.get("policies") or []
    if any(isinstance(policy, dict) and policy.get("additive") for policy in policies):
        raise ValueError("additive policies are beyond the oracle")
    contract = next((policy for policy in policies if isinstance(policy, dict)), None)
    if contract is None:
        raise ValueError("no policy")
    if contract.get("match"):
        raise ValueError(f"policy {contract.get('id')!r} does not match every case")
    calendars = {
        calendar.get("id"): calendar
        for calendar in document.get("calendars") or []
        if isinstance(calendar, dict)
    }
    calendar = calendars.get(contract.get("calendar"), {})
    if calendar.get("always_open") is not True:
        raise ValueError(f"calendar {contract.get('calendar')!r} is not always open")
    if "first_response" not in contract:
        raise ValueError(f"policy {contract.get('id')!r} sets no first_response")
    return ContractPolicy(str(contract["id"]), parse_duration(contract["first_response"]))


def parse_duration(value: object) -> timedelta:
    """`20s`, `1m`, `1h30m`, `1d`: digits and a unit, repeated."""
    text = str(value).strip().lower()
    seconds = 0
    digits = ""
    for character in text:
        if character.isdigit():
            digits += character
        elif character in _DURATION_UNITS and digits:
            seconds += int(digits) * _DURATION_UNITS[character]
            digits = ""
        else:
            raise ValueError(f"{value!r} is not a duration")
    if digits or seconds <= 0:
        raise ValueError(f"{value!r} is not a duration")
    return timedelta(seconds=seconds)


def expected_clocks(
    histories: Mapping[str, Sequence[CaseEvent]],
    accepted: Mapping[str, SentMessage],
    membership: Mapping[str, set[str]],
    target: timedelta,
    deadlines: BreachDeadlines,
    absorbed: Mapping[str, str] | None = None,
) -> list[ExpectedClock]:
    """Every first_response clock the inputs imply, with its outcome (see the module doc)."""
    inbound: dict[str, list[SentMessage]] = defaultdict(list)
    for message_id, cases in membership.items():
        message = accepted.get(message_id)
        if message is not None and message.direction == "inbound":
            for case_id in cases:
                inbound[case_id].append(message)
    replies: dict[str, list[datetime]] = defaultdict(list)
    for message in accepted.values():
        if message.direction == "outbound":
            replies[message.thread].append(message.sent_at)
    for times in replies.values():
        times.sort()
    opened: dict[str, datetime] = {}
    for case_id, history in histories.items():
        created = next((event for event in history if event.type == CASE_CREATED), None)
        if created is None or created.case.status in _CLOSED or case_id in (absorbed or {}):
            continue  # no clock: never opened, closed at once (a skip rule), or absorbed
        openers = [message.sent_at for message in inbound[case_id] if message.needs_case]
        opened[case_id] = min(openers, default=created.case.opened_at)
    openings: dict[str, list[datetime]] = defaultdict(list)  # thread -> its cases' openings
    for case_id, at in opened.items():
        for thread in {message.thread for message in inbound[case_id]}:
            openings[thread].append(at)
    clocks = []
    for case_id, at in opened.items():
        threads = {message.thread for message in inbound[case_id]}
        until = min(
            (later for thread in threads for later in openings[thread] if later > at),
            default=_NEVER,
        )
        reply = min(
            (sent for thread in threads for sent in replies[thread] if at <= sent < until),
            default=None,
        )
        clocks += [
            replace(clock, threads=tuple(sorted(threads)))
            for clock in _case_clocks(
                case_id, at, reply, open_intervals(histories[case_id]), target, deadlines
            )
        ]
    return clocks


def _case_clocks(
    case_id: str,
    opened_at: datetime,
    reply: datetime | None,
    intervals: Sequence[tuple[datetime, datetime]],
    target: timedelta,
    deadlines: BreachDeadlines,
) -> list[ExpectedClock]:
    """The case's first_response clocks: one from its opening, and one more from each
    reopening while no reply has come."""
    clocks = []
    for index, (start, closed) in enumerate(intervals):
        if index == 0:
            start = opened_at
        elif reply is not None and reply <= start:
            break
        due = start + target
        answered = reply if reply is not None and reply < closed else None
        ended = answered or (closed if closed != _NEVER else None)
        outcome: Outcome
        if ended is not None:
            outcome = "breached" if ended > due else "met"
        elif deadlines.must_have_fired(due):
            outcome = "breached"
        else:
            outcome = "undecided" if due <= deadlines.horizon else "running"
        clocks.append(ExpectedClock(case_id, start, due, ended, outcome, answered is not None))
        if answered is not None:
            break
    return clocks


def sla_verdicts(
    capture: Capture,
    histories: Mapping[str, Sequence[CaseEvent]],
    accepted: Mapping[str, SentMessage],
    membership: Mapping[str, set[str]],
    alerts: Sequence[Alert],
    deadlines: BreachDeadlines,
    absorbed: Mapping[str, str] | None = None,
) -> list[Verdict]:
    breaches = [alert for alert in alerts if alert.type == SLA_BREACHED]
    retractions = [alert for alert in alerts if alert.type == SLA_BREACH_RETRACTED]
    breach_ids = {alert.id for alert in breaches}
    retracted = {
        alert.data.retracted_alert_id
        for alert in retractions
        if alert.data.retracted_alert_id in breach_ids
    }
    unmatched = [
        alert.id for alert in retractions if alert.data.retracted_alert_id not in breach_ids
    ]
    provisional = [alert.id for alert in breaches if alert.data.provisional]
    rows = [
        Verdict(
            "retracted_breaches",
            len(retracted),
            "alerts",
            None,
            f"of {len(breaches)} breaches",
        ),
        Verdict(
            "provisional_breaches", len(provisional), "alerts", None, f"of {len(breaches)} breaches"
        ),
        Verdict(
            "unmatched_retractions",
            len(unmatched),
            "alerts",
            not unmatched,
            _named(unmatched, "retract no breach of the run"),
        ),
        duplicated_alerts_verdict(alerts),
    ]
    try:
        policy = contract_policy(capture.sla_policies)
    except (OSError, ValueError, yaml.YAMLError) as error:
        not_checked = f"not checked: {error}"
        return [
            Verdict("false_breaches", 0, "clocks", False, not_checked),
            Verdict("missed_breaches", 0, "clocks", False, not_checked),
            Verdict("attainment_mismatched_clocks", 0, "clocks", False, not_checked),
            *rows,
        ]
    clocks = expected_clocks(
        histories, accepted, membership, policy.first_response, deadlines, absorbed
    )
    standing = Counter(
        alert.data.case_id
        for alert in breaches
        if alert.data.clock == "first_response" and alert.id not in retracted
    )
    return [
        *outcome_verdicts(clocks, standing),
        attainment_verdict(capture, policy, clocks),
        paged_in_error_verdict(breaches, retracted, accepted, histories),
        *rows,
    ]


# How close to its deadline a reply may reach ingest and still be processed after a confirmed
# breach without the watermark failing: the SLA's lease (CASEWIRE_SLA_WATERMARK_LEASE_SECONDS,
# 1 s) covers the router's heartbeat and the marks' way; a second more for the reply's own way.
WATERMARK_ALLOWANCE = timedelta(seconds=2)


def paged_in_error_verdict(
    breaches: Sequence[Alert],
    retracted: set[str],
    accepted: Mapping[str, SentMessage],
    histories: Mapping[str, Sequence[CaseEvent]],
) -> Verdict:
    """Breaches fired as confirmed (not provisional) and later retracted by a reply that ingest
    had accepted well before the deadline, together with every customer message of its thread
    sent before it: a page the router's watermark should have held. A reply that reached
    ingest within the allowance of the deadline may still race the breach, and one whose
    thread's earlier customer message reached ingest only later (a platform still retrying
    it) could not be linked to the case before: neither is counted here."""
    outbound_of: dict[str, list[SentMessage]] = defaultdict(list)
    for case_id, history in histories.items():
        for event in history:
            message = accepted.get(event.data.message_id or "")
            if event.type == CASE_RESPONDED and message is not None:
                outbound_of[case_id].append(message)
    inbound_of: dict[str, list[SentMessage]] = defaultdict(list)
    for message in accepted.values():
        if message.direction == "inbound":
            inbound_of[message.thread].append(message)
    wrong = []
    for alert in breaches:
        if alert.id not in retracted or alert.data.provisional:
            continue
        replies = outbound_of.get(alert.data.case_id)
        if not replies:
            continue
        first = min(replies, key=lambda message: message.sent_at)
        linkable_at = max(
            (
                message.accepted_at
                for message in inbound_of[first.thread]
                if message.sent_at <= first.sent_at
            ),
            default=first.accepted_at,
        )
        if max(first.accepted_at, linkable_at) < alert.data.due_at - WATERMARK_ALLOWANCE:
            wrong.append(
                f"{alert.data.case_id} (reply accepted {_instant(first.accepted_at)},"
                f" due {_instant(alert.data.due_at)})"
            )
    return Verdict("breaches_paged_in_error", len(wrong), "alerts", not wrong, _named(wrong))


def outcome_verdicts(clocks: Sequence[ExpectedClock], standing: Mapping[str, int]) -> list[Verdict]:
    """Per case, the breaches that stand against the breaches the oracle expects."""
    by_case: dict[str, list[ExpectedClock]] = defaultdict(list)
    for clock in clocks:
        by_case[clock.case_id].append(clock)
    false, missed = [], []
    false_count = missed_count = 0
    for case_id in sorted(set(by_case) | set(standing)):
        expected = by_case.get(case_id, [])
        breached = sum(clock.outcome == "breached" for clock in expected)
        undecided = sum(clock.outcome == "undecided" for clock in expected)
        actual = standing.get(case_id, 0)
        if actual > breached + undecided:
            false_count += actual - breached - undecided
            false.append(f"{case_id} ({_clock_story(expected)}, {actual} breach(es))")
        if actual < breached:
            missed_count += breached - actual
            missed.append(f"{case_id} ({_clock_story(expected)}, {actual} breach(es))")
    decided = Counter(clock.outcome for clock in clocks)
    summary = (
        f"{len(clocks)} clocks: {decided['met']} met, {decided['breached']} breached,"
        f" {decided['undecided']} undecided, {decided['running']} running"
    )
    return [
        Verdict("false_breaches", false_count, "clocks", not false, _named(false) or summary),
        Verdict("missed_breaches", missed_count, "clocks", not missed, _named(missed) or summary),
    ]


def _clock_story(clocks: Sequence[ExpectedClock]) -> str:
    if not clocks:
        return "no clock expected"
    return f"{', '.join(clocks[0].threads)}: " + "; ".join(
        f"started {_instant(clock.started_at)}, due {_instant(clock.due_at)},"
        f" ended {_instant(clock.ended_at)}: {clock.outcome}"
        for clock in clocks
    )


def _instant(value: datetime | None) -> str:
    return "never" if value is None else value.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


def duplicated_alerts_verdict(alerts: Sequence[Alert]) -> Verdict:
    """One alert per thing alerted: a second `ce_id` for the breach of one clock, for one
    warning fraction of it, or for one retraction is a duplicate. (The clock audit trail may
    repeat a kind: a clock pauses and resumes many times.)"""
    seen: set[tuple[Any, ...]] = set()
    repeats = []
    for alert in alerts:
        data = alert.data
        clock = (data.case_id, data.policy_id, data.clock, data.started_at)
        key: tuple[Any, ...]
        if alert.type == SLA_BREACH_RETRACTED:
            key = (alert.type, data.retracted_alert_id)
        elif alert.type == SLA_BREACHED:
            key = (alert.type, *clock)
        elif alert.type == SLA_WARNING:
            key = (alert.type, *clock, data.fraction)
        else:
            continue
        if key in seen:
            repeats.append(f"{alert.id} (case {data.case_id})")
        seen.add(key)
    return Verdict("duplicated_alerts", len(repeats), "alerts", not repeats, _named(repeats))


def attainment_verdict(
    capture: Capture, policy: ContractPolicy, clocks: Sequence[ExpectedClock]
) -> Verdict:
    """The SLA service's attainment gauge (clocks ended by the reply they waited for, by
    final outcome) against the oracle's answered clocks."""
    answered = Counter(clock.outcome for clock in clocks if clock.answered)
    met, breached = answered["met"], answered["breached"]
    shown = attainment(capture.sla_metrics, policy.id)
    if shown is None:
        return Verdict(
            "attainment_mismatched_clocks",
            met + breached,
            "clocks",
            False,
            f"no {ATTAINMENT_GAUGE}{{clock=first_response, policy={policy.id}}} in the metrics;"
            f" oracle: {met} met, {breached} breached",
        )
    shown_met, shown_breached = shown
    mismatch = abs(shown_met - met) + abs(shown_breached - breached)
    return Verdict(
        "attainment_mismatched_clocks",
        mismatch,
        "clocks",
        mismatch == 0,
        f"gauge {shown_met:g} met, {shown_breached:g} breached;"
        f" oracle {met} met, {breached} breached (answered clocks)",
    )


def attainment(metrics: str, policy_id: str) -> tuple[float, float] | None:
    """(met, breached) first_response clocks of the policy from the attainment gauge."""
    totals: dict[str, float] = defaultdict(float)
    found = False
    # Only the gauge's lines are parsed: the exposition holds thousands of other samples.
    lines = [line for line in metrics.splitlines() if ATTAINMENT_GAUGE in line]
    try:
        families = list(text_string_to_metric_families("\n".join(lines) + "\n"))
    except ValueError:
        return None  # not an exposition: no gauge to read
    for family in families:
        if family.name != ATTAINMENT_GAUGE:
            continue
        for sample in family.samples:
            labels = sample.labels
            if labels.get("clock") == "first_response" and labels.get("policy") == policy_id:
                found = True
                totals[labels.get("outcome", "")] += sample.value
    return (totals["met"], totals["breached"]) if found else None


# Dead letters and replay


def dead_letter_verdict(dead_letters: Sequence[Record], expected: Mapping[str, int]) -> Verdict:
    """Each dead letter is a raw body the workload made bad on purpose: per reason, no more
    distinct bodies than the workload meant (the same body again is the same input, retried)."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    unexplained = []
    for record in dead_letters:
        reason = record.header(topics.DLQ_REASON_HEADER) or "(no reason)"
        if record.topic == topics.dlq(topics.RAW) and (
            record.value in bodies[reason] or len(bodies[reason]) < expected.get(reason, 0)
        ):
            bodies[reason].add(record.value)
            continue
        source = record.header(topics.DLQ_SOURCE_HEADER) or "?"
        unexplained.append(
            f"{record.topic}/{record.partition}/{record.offset} {reason} from {source}"
        )
    by_reason = ", ".join(
        f"{reason} ×{len(kept)}" for reason, kept in sorted(bodies.items()) if kept
    )
    return Verdict(
        "unexplained_dead_letters",
        len(unexplained),
        "records",
        not unexplained,
        _named(unexplained)
        or f"{len(dead_letters)} dead letters of {by_reason or 'no'} bad inputs",
    )


def replay_verdict(capture: Capture) -> Verdict:
    """A replay of the whole raw topic adds no message: it may republish one already
    published (counted as information), never one that was not."""
    if capture.replay is None:
        return Verdict("replay_added", 0, "messages", False, "no replay was run")
    added = sorted(capture.message_ids_after_replay - capture.message_ids_before_replay)
    grown = capture.messages_after_replay - capture.messages_before_replay
    republished = max(0, grown - len(added))
    published = capture.replay.get("published", 0)
    return Verdict(
        "replay_added",
        len(added),
        "messages",
        not added,
        _named(added, "new on casewire.messages.v1")
        or f"casewire.messages.v1 {capture.messages_before_replay} -> "
        f"{capture.messages_after_replay} records, {republished} republished (ids published"
        f" before); replay published {published}",
    )


# Reported figures


def reported(
    capture: Capture,
    accepted: Mapping[str, SentMessage],
    histories: Mapping[str, Sequence[CaseEvent]],
    case_records: Distinct,
    alert_records: Distinct,
) -> list[Verdict]:
    faults = Counter(fault.name for fault in capture.faults)
    rows = [
        Verdict("accepted_messages", len(accepted), "messages", None),
        Verdict("cases", len(histories), "cases", None),
        Verdict(
            "republished_records",
            case_records.republished + alert_records.republished,
            "records",
            None,
            f"case events {case_records.republished}, sla alerts {alert_records.republished}",
        ),
        Verdict(
            "faults_injected",
            len(capture.faults),
            "faults",
            None,
            ", ".join(f"{name} ×{count}" for name, count in sorted(faults.items())),
        ),
    ]
    rows += [Verdict(name, value, "s", None) for name, value in capture.timings.items()]
    return rows


def _named(items: Iterable[str], what: str = "") -> str:
    """The first offending items, and how many there are."""
    listed = list(items)
    if not listed:
        return ""
    shown = "; ".join(listed[:_SHOWN])
    more = f" (+{len(listed) - _SHOWN} more)" if len(listed) > _SHOWN else ""
    return f"{shown}{more}{': ' + what if what else ''}"
