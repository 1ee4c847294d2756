"""What a chaos run hands to the oracle: the inputs ingest accepted and every output.

The runner fills a `Capture`; the oracle (`oracle.py`) reads only this, so each can be tested
alone: the oracle with hand-made captures, the runner against the real stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class SentMessage:
    """One message the workload posted to ingest and ingest accepted (2xx, after retries)."""

    message_id: str  # the canonical id: uuid5(NAMESPACE_URL, f"{platform}:{platform_message_id}")
    platform: str  # x | facebook | instagram | whatsapp | other
    platform_message_id: str
    direction: Literal["inbound", "outbound"]
    event: Literal["message", "edit", "delete"]
    sent_at: datetime  # event time, as the platform says (UTC)
    accepted_at: datetime  # when ingest answered 2xx (the last try)
    # The workload's own name for the customer conversation this message belongs to: the
    # oracle expects the inbound messages of one thread (at a time) in one case.
    thread: str
    in_reply_to: str | None = None  # platform id of the message it answers
    author_id: str = ""
    language: str | None = None
    tries: int = 1
    # Whether the workload expects the router to open/keep a case for it (False for praise
    # and other messages the rules skip, and for outbound messages).
    needs_case: bool = True


@dataclass(frozen=True)
class Record:
    """One Kafka record as read back after the run."""

    topic: str
    partition: int
    offset: int
    key: str | None
    headers: dict[str, bytes]
    value: bytes
    timestamp: datetime

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode(errors="replace")


@dataclass(frozen=True)
class StoredMessage:
    """A row of the router's message store after the run."""

    message_id: str
    case_id: str | None
    direction: str
    sent_at: datetime


@dataclass(frozen=True)
class Fault:
    """A fault the runner injected, and when (wall clock, UTC)."""

    name: str  # e.g. kill-router, kill-sla, kill-ingest, stop-postgres, freeze-broker,
    #            freeze-router, rebalance
    started_at: datetime
    ended_at: datetime
    detail: str = ""


@dataclass
class Capture:
    """Everything one run produced, read back once the stack had drained."""

    seed: int
    sent: list[SentMessage]
    case_events: list[Record]  # casewire.case-events.v1, every record, every partition
    sla_alerts: list[Record]  # casewire.sla-alerts.v1
    dead_letters: list[Record]  # every *.dlq topic
    stored_messages: list[StoredMessage]
    agent_capacity: dict[str, int]  # from the agents file the router ran with
    sla_policies: Path  # the policy file the SLA service ran with
    sla_metrics: str  # Prometheus text exposition of one SLA replica, after the drain
    faults: list[Fault] = field(default_factory=list)
    # `casewire-ingest replay --json` over the whole run, after the drain (None: not run).
    replay: dict[str, Any] | None = None
    # Records on casewire.messages.v1 before and after that replay, and their message ids: a
    # replay may publish again a message already published (not a new one).
    messages_before_replay: int = 0
    messages_after_replay: int = 0
    message_ids_before_replay: frozenset[str] = frozenset()
    message_ids_after_replay: frozenset[str] = frozenset()
    # Measured by the runner: e.g. takeover_s, rebalance_stall_s, drain_s.
    timings: dict[str, float] = field(default_factory=dict)
    # Rejected posts that the workload meant to be rejected (hostile input), by reason.
    expected_rejections: dict[str, int] = field(default_factory=dict)
