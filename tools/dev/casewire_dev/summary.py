"""The demo's live summary: what the pipeline did, as seen on Kafka alone.

`DemoSummary` folds decoded records into counters (pure, testable without a broker);
`follow` feeds it from the topics; `render` and `one_line` show it in a terminal or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from casewire_common import events, topics
from pydantic import ValidationError
from rich.console import Console, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from casewire_dev.care_desk import DeskProgress
from casewire_dev.replay import ReplayProgress
from casewire_dev.results import percentile

PRIORITIES = ("P1", "P2", "P3", "P4")
DEAD_LETTER_TOPICS = tuple(topics.dlq(topic) for topic in topics.ALL)


@dataclass
class CaseView:
    """The latest snapshot of one case, as far as the summary needs it."""

    team: str
    priority: str
    status: str


@dataclass
class DemoSummary:
    """Counters over the demo's records; every event is counted once (by CloudEvents id)."""

    messages_inbound: int = 0
    messages_outbound: int = 0
    cases: dict[str, CaseView] = field(default_factory=dict)
    case_ids_by_conversation: dict[str, str] = field(default_factory=dict)
    incidents: set[str] = field(default_factory=set)
    first_response_seconds: list[float] = field(default_factory=list)
    sla_warnings: int = 0
    sla_breaches: int = 0
    breaches_by_priority: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0
    _seen_event_ids: set[str] = field(default_factory=set)

    def add_message(self, value: bytes) -> None:
        """A canonical message from `casewire.messages.v1`."""
        try:
            direction = json.loads(value)["direction"]
        except (ValueError, KeyError, TypeError):
            self.unreadable += 1
            return
        if direction == "outbound":
            self.messages_outbound += 1
        else:
            self.messages_inbound += 1

    def add_record(
        self,
        topic: str,
        headers: Sequence[tuple[str, bytes]],
        value: bytes | None,
        key: bytes | None,
    ) -> None:
        """One Kafka record from any of the topics the summary follows."""
        if topic in DEAD_LETTER_TOPICS:
            self.add_dead_letter(topic)
        elif value is None:
            self.unreadable += 1
        elif topic == topics.MESSAGES:
            if not any(name == topics.RECORD_HEADER for name, _ in headers):
                self.add_message(value)  # not a thread-control record (docs/handover.md)
        else:
            try:
                self.add_event(events.decode_event(headers, value, key))
            except ValueError:
                self.unreadable += 1

    def add_dead_letter(self, topic: str) -> None:
        self.dead_letters[topic.removeprefix("casewire.").removesuffix(".dlq")] += 1

    def add_event(self, event: events.DecodedEvent) -> None:
        """A case event or an SLA alert; redelivered events are ignored."""
        if event.id in self._seen_event_ids:
            return
        self._seen_event_ids.add(event.id)
        try:
            if event.type.startswith("casewire.sla."):
                self._add_sla_alert(event.type, events.SlaAlertData.model_validate(event.data))
            elif event.type.startswith("casewire.case."):
                self._add_case_event(event.type, events.CaseEventData.model_validate(event.data))
            elif event.type.startswith("casewire.incident."):
                # Incidents share the case-events topic but carry no case snapshot.
                self.incidents.add(events.IncidentData.model_validate(event.data).incident_id)
        except ValidationError:
            self.unreadable += 1

    def case_of(self, conversation_id: str) -> tuple[str, str] | None:
        """(case id, latest status) of the conversation's case, for the care desk."""
        case_id = self.case_ids_by_conversation.get(conversation_id)
        return None if case_id is None else (case_id, self.cases[case_id].status)

    def _add_case_event(self, event_type: str, data: events.CaseEventData) -> None:
        case = data.case
        # One case's events share a partition (key = case id): the last one seen is the latest.
        # Every event carries the whole snapshot, so status changes, reopenings and drained
        # queues (assigned events) all move the counts.
        self.cases[case.id] = CaseView(case.team, case.priority, case.status)
        self.case_ids_by_conversation[case.conversation_id] = case.id
        if data.merged_conversation_id is not None:
            self.case_ids_by_conversation[data.merged_conversation_id] = case.id
        first = event_type == events.CASE_RESPONDED and data.first_response
        if first and case.first_response_at is not None:
            waited = (case.first_response_at - case.opened_at).total_seconds()
            self.first_response_seconds.append(waited)

    def _add_sla_alert(self, event_type: str, data: events.SlaAlertData) -> None:
        if event_type == events.SLA_WARNING:
            self.sla_warnings += 1
        elif event_type == events.SLA_BREACHED:
            self.sla_breaches += 1
            self.breaches_by_priority[data.priority] += 1

    @property
    def cases_by_team(self) -> Counter[str]:
        return Counter(case.team for case in self.cases.values())

    @property
    def cases_by_priority(self) -> Counter[str]:
        return Counter(case.priority for case in self.cases.values())

    @property
    def cases_by_status(self) -> Counter[str]:
        return Counter(case.status for case in self.cases.values())

    @property
    def first_response_median(self) -> float | None:
        return (
            statistics.median(self.first_response_seconds) if self.first_response_seconds else None
        )

    @property
    def first_response_p90(self) -> float | None:
        values = self.first_response_seconds
        return percentile(values, 0.9) if values else None


def duration(seconds: float | None) -> str:
    """Short human form: 45s, 12m05s, 3h07m."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _counts(counter: Counter[str], order: Sequence[str] = ()) -> str:
    keys = [key for key in order if counter[key]] + sorted(set(counter) - set(order))
    return "  ".join(f"{key} {counter[key]}" for key in keys) or "-"


def _response_times(summary: DemoSummary, scale: float = 1.0) -> str:
    median, p90 = summary.first_response_median, summary.first_response_p90
    if median is None or p90 is None:
        return "none yet"
    return f"median {duration(median * scale)}, p90 {duration(p90 * scale)}"


def _desk(desk: DeskProgress) -> str:
    return f"resolved {desk.resolved}, already closed {desk.already_closed}, failed {desk.failed}"


def render(
    summary: DemoSummary,
    progress: ReplayProgress,
    desk: DeskProgress,
    *,
    speed: float,
    elapsed: float,
) -> RenderableType:
    """The live terminal view."""
    status = summary.cases_by_status
    replay_state = "finished" if progress.finished else f"{progress.lag_seconds:.1f}s behind"
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    table.add_row(
        "posted to ingest",
        f"{progress.posted} of {progress.planned}, {progress.rejected} rejected ({replay_state})",
    )
    table.add_row(
        "messages on Kafka",
        f"{summary.messages_inbound} inbound, {summary.messages_outbound} outbound",
    )
    table.add_row(
        "cases",
        f"{len(summary.cases)}: assigned {status['assigned']}, queued {status['queued']}, "
        f"resolved {status['resolved']}, "
        f"other {len(summary.cases) - status['assigned'] - status['queued'] - status['resolved']}",
    )
    table.add_row("  by status", _counts(status))
    table.add_row("  by team", _counts(summary.cases_by_team))
    table.add_row("  by priority", _counts(summary.cases_by_priority, PRIORITIES))
    answered = len(summary.first_response_seconds)
    table.add_row("first responses", f"{answered}: {_response_times(summary)}")
    table.add_row("  in corpus time", _response_times(summary, speed))
    table.add_row(
        "SLA",
        Text(
            f"{summary.sla_warnings} warnings, {summary.sla_breaches} breaches "
            f"({_counts(summary.breaches_by_priority, PRIORITIES)})",
            style="bold red" if summary.sla_breaches else "",
        ),
    )
    table.add_row("care desk", _desk(desk))
    if desk.last_failure:
        table.add_row("  last failure", desk.last_failure)
    if summary.incidents:
        table.add_row("incidents", str(len(summary.incidents)))
    table.add_row("dead letters", _counts(summary.dead_letters) if summary.dead_letters else "0")
    if summary.unreadable:
        table.add_row("unreadable records", str(summary.unreadable))
    if progress.last_rejection:
        table.add_row("last rejection", progress.last_rejection)
    title = f"Casewire demo · {duration(elapsed)} · replay at {speed:g}×"
    return Panel(
        table, title=title, subtitle="Ctrl-C stops everything", border_style="cyan", expand=False
    )


def one_line(
    summary: DemoSummary, progress: ReplayProgress, desk: DeskProgress, *, elapsed: float
) -> str:
    """The same figures on one line, for logs and pipes."""
    status = summary.cases_by_status
    return (
        f"[{duration(elapsed)}] posted {progress.posted}/{progress.planned} "
        f"rejected {progress.rejected} | kafka in {summary.messages_inbound} "
        f"out {summary.messages_outbound} | cases {len(summary.cases)} "
        f"assigned {status['assigned']} queued {status['queued']} "
        f"resolved {status['resolved']} reopened {status['reopened']} | "
        f"desk resolved {desk.resolved} already closed {desk.already_closed} "
        f"failed {desk.failed} | "
        f"teams {_counts(summary.cases_by_team)} | "
        f"priorities {_counts(summary.cases_by_priority, PRIORITIES)} | "
        f"first responses {len(summary.first_response_seconds)} "
        f"median {duration(summary.first_response_median)} "
        f"p90 {duration(summary.first_response_p90)} | "
        f"sla warnings {summary.sla_warnings} breaches {summary.sla_breaches} | "
        f"dlq {sum(summary.dead_letters.values())}"
    )


async def follow(
    bootstrap_servers: str, summary: DemoSummary, *, since_ms: int, group_id: str
) -> None:
    """Feed `summary` from Kafka until cancelled. Records older than `since_ms` belong to an
    earlier demo on a reused broker and are skipped."""
    consumer = AIOKafkaConsumer(
        topics.MESSAGES,
        topics.CASE_EVENTS,
        topics.SLA_ALERTS,
        *DEAD_LETTER_TOPICS,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        auto_offset_reset="earliest",  # "latest" is wrong on the local broker (Tansu)
        enable_auto_commit=False,  # a watcher: it never needs to resume
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for record in records:
                    if record.timestamp >= since_ms:
                        summary.add_record(record.topic, record.headers, record.value, record.key)
    finally:
        with contextlib.suppress(Exception):  # stopping must not hide why we stop
            await consumer.stop()


async def show(
    summary: DemoSummary,
    progress: ReplayProgress,
    desk: DeskProgress,
    *,
    speed: float,
    interactive: bool,
    plain_every_seconds: float = 5.0,
) -> None:
    """Redraw the summary about once a second on a terminal, or print a line every few
    seconds otherwise, until cancelled (the last view stays on screen)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    if interactive:
        with Live(console=Console(), auto_refresh=False) as live:
            while True:
                view = render(summary, progress, desk, speed=speed, elapsed=loop.time() - started)
                live.update(view, refresh=True)
                await asyncio.sleep(1.0)
    else:
        try:
            while True:
                await asyncio.sleep(plain_every_seconds)
                print(one_line(summary, progress, desk, elapsed=loop.time() - started), flush=True)
        finally:
            print(one_line(summary, progress, desk, elapsed=loop.time() - started), flush=True)
