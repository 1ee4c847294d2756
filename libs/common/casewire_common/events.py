"""Case events and SLA alerts: their data models and their CloudEvents (Kafka binary mode) form."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event
from pydantic import BaseModel, ConfigDict, Field

from casewire_common.messages import Channel, Platform, UtcDatetime, Visibility, utc

CaseStatus = Literal["queued", "assigned", "pending", "resolved", "reopened", "no_action"]
Priority = Literal["P1", "P2", "P3", "P4"]
ClockName = Literal["first_response", "next_response", "resolution"]

CASE_CREATED = "casewire.case.created"
CASE_MESSAGE_ADDED = "casewire.case.message_added"
CASE_ASSIGNED = "casewire.case.assigned"
CASE_PRIORITY_CHANGED = "casewire.case.priority_changed"
CASE_RESPONDED = "casewire.case.responded"
CASE_STATUS_CHANGED = "casewire.case.status_changed"
CASE_MERGED = "casewire.case.merged"
CASE_ESCALATED = "casewire.case.escalated"
CASE_MESSAGE_UPDATED = "casewire.case.message_updated"
CASE_COLLISION = "casewire.case.collision"
AGENT_UPDATED = "casewire.agent.updated"
SAVED_REPLY_UPDATED = "casewire.saved_reply.updated"
INCIDENT_OPENED = "casewire.incident.opened"
INCIDENT_UPDATED = "casewire.incident.updated"
INCIDENT_CLOSED = "casewire.incident.closed"
# The router's low watermark (DESIGN.md, "Event time and late data"): on every partition of
# the case-events topic, after the events it vouches for.
ROUTER_WATERMARK = "casewire.router.watermark"

SLA_WARNING = "casewire.sla.warning"
SLA_BREACHED = "casewire.sla.breached"
SLA_CLOCK_STARTED = "casewire.sla.clock_started"
SLA_CLOCK_PAUSED = "casewire.sla.clock_paused"
SLA_CLOCK_RESUMED = "casewire.sla.clock_resumed"
SLA_CLOCK_FULFILLED = "casewire.sla.clock_fulfilled"
SLA_BREACH_RETRACTED = "casewire.sla.breach_retracted"

# Every `ce_type` the services emit, by the data model it carries: the published contract
# (contracts/asyncapi, contracts/schemas) is generated from these groups, and a test holds
# them equal to the constants above and to what the code emits.
CASE_EVENT_TYPES = (
    CASE_CREATED,
    CASE_MESSAGE_ADDED,
    CASE_ASSIGNED,
    CASE_PRIORITY_CHANGED,
    CASE_RESPONDED,
    CASE_STATUS_CHANGED,
    CASE_MERGED,
    CASE_ESCALATED,
    CASE_MESSAGE_UPDATED,
    CASE_COLLISION,
)
INCIDENT_EVENT_TYPES = (INCIDENT_OPENED, INCIDENT_UPDATED, INCIDENT_CLOSED)
AGENT_EVENT_TYPES = (AGENT_UPDATED,)
SAVED_REPLY_EVENT_TYPES = (SAVED_REPLY_UPDATED,)
WATERMARK_EVENT_TYPES = (ROUTER_WATERMARK,)
SLA_EVENT_TYPES = (
    SLA_WARNING,
    SLA_BREACHED,
    SLA_CLOCK_STARTED,
    SLA_CLOCK_PAUSED,
    SLA_CLOCK_RESUMED,
    SLA_CLOCK_FULFILLED,
    SLA_BREACH_RETRACTED,
)


class MessageSentiment(BaseModel):
    """The tone of a customer message: its most likely label, and its polarity score
    (P(positive) - P(negative), from -1 to 1). See docs/sentiment.md."""

    model_config = ConfigDict(frozen=True)

    label: Literal["negative", "neutral", "positive"]
    score: float = Field(ge=-1, le=1)


class CaseSnapshot(BaseModel):
    """The whole case after a change, so that a consumer never has to call back."""

    model_config = ConfigDict(frozen=True)

    id: str
    conversation_id: str
    platform: Platform
    channel: Channel
    visibility: Visibility
    status: CaseStatus
    priority: Priority
    urgency_score: int = Field(ge=0, le=100)
    team: str
    assignee: str | None
    tags: list[str]
    language: str | None
    opened_at: UtcDatetime
    first_response_at: UtcDatetime | None
    resolved_at: UtcDatetime | None
    version: int = Field(
        default=0,
        ge=0,
        description="1 for `casewire.case.created`, one more for each later event about the"
        " case: a consumer sees whether it has every event of the case, in order. 0 in events"
        " written before versions were counted.",
    )
    sentiment: MessageSentiment | None = Field(
        default=None,
        description="The sentiment of the case's latest customer message (as last edited)."
        " Absent in events written before sentiment was read, and until the case has a"
        " customer message read since.",
    )
    worst_sentiment: MessageSentiment | None = Field(
        default=None,
        description="The most negative sentiment (lowest score) of the case's customer"
        " messages read so far.",
    )


class UrgencySignal(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    weight: int
    detail: str = ""


class Urgency(BaseModel):
    model_config = ConfigDict(frozen=True)

    score: int = Field(ge=0, le=100)
    signals: list[UrgencySignal]


class CandidateAgent(BaseModel):
    """One agent considered for a case, and why it was or was not eligible."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    load: int
    capacity: int
    speaks_language: bool
    eligible: bool
    reason: str


class RoutingDecision(BaseModel):
    """Why a case went where it went: enough to explain it to a care lead."""

    model_config = ConfigDict(frozen=True)

    rules_version: str
    matched_rules: list[str]
    urgency: Urgency
    team: str
    priority: Priority
    tags: list[str]
    skip: bool
    reply_template: str | None
    candidates: list[CandidateAgent] = Field(
        default_factory=list,
        description="At most five of the team's agents, best first: the chosen one, the others"
        " with room in the order they would have been chosen, then those without room (at"
        " capacity before offline). Events written before the list was bounded list every"
        " agent of the team, by id.",
    )
    candidates_considered: dict[str, int] | None = Field(
        default=None,
        description="Every agent of the team considered, counted by `reason` (`has room`,"
        " `at capacity`, `offline`); absent in events written before the list was bounded.",
    )
    assignee: str | None = None
    assignment_reason: str = ""


class ActorRef(BaseModel):
    """Who made a change through the API: the verified token's subject and the role it acted
    with (`agent`, `lead`, `admin`, or `service` with the token's name as id)."""

    model_config = ConfigDict(frozen=True)

    id: str
    role: Literal["agent", "lead", "admin", "service"]


class CaseEventData(BaseModel):
    """The data of every `casewire.case.*` event."""

    model_config = ConfigDict(frozen=True)

    case: CaseSnapshot
    actor: ActorRef | None = Field(
        default=None,
        description="Who made the change through the API; null for what the router decided"
        " from messages (routing, threading, escalation).",
    )
    message_id: str | None = None
    decision: RoutingDecision | None = None
    first_response: bool | None = None
    agent_id: str | None = None
    previous_status: CaseStatus | None = None
    previous_priority: Priority | None = None
    merged_conversation_id: str | None = Field(
        default=None,
        description="casewire.case.merged: the conversation whose messages now join this case.",
    )
    merged_case_id: str | None = Field(
        default=None,
        description="casewire.case.merged on the case that absorbs another (two cases found to"
        " be one reply chain of one customer, the earlier-opened one kept): the absorbed case,"
        " whose messages, replies and clocks now belong to this case.",
    )
    merged_into_case_id: str | None = Field(
        default=None,
        description="casewire.case.merged on the absorbed case: the case it now belongs to. The"
        " absorbed case is closed (status resolved) and its SLA clocks end with no outcome.",
    )
    incident_id: str | None = Field(
        default=None, description="The incident that raised the case's priority, if one did."
    )
    escalation_rule: str | None = Field(
        default=None, description="casewire.case.escalated: the rules file's escalation id."
    )
    sla_alert_id: str | None = Field(
        default=None, description="casewire.case.escalated: the SLA alert (ce_id) it answers."
    )
    text: str | None = Field(
        default=None,
        description="casewire.case.message_updated: the message's text after the edit.",
    )
    deleted: bool | None = Field(
        default=None,
        description="casewire.case.message_updated: true when the message was deleted.",
    )
    undoes_sla_alert_id: str | None = Field(
        default=None,
        description="casewire.case.escalated: this event undoes the escalation that SLA alert"
        " (ce_id) caused, its breach having been retracted (`sla_alert_id` is the retraction).",
    )
    lease_holder: str | None = Field(
        default=None,
        description="casewire.case.collision: who held the case's reply lease when the reply"
        " was made (null: nobody did; the reply was not the owner's). `agent_id` is who replied"
        " (null for a platform echo: the platform does not say which person sent it) and"
        " `message_id` the reply.",
    )
    reply_source: Literal["api", "platform"] | None = Field(
        default=None,
        description="casewire.case.collision: how the router learned of the reply: recorded"
        " through the API (`api`), or seen on the platform (`platform`, an echo that the lease"
        " holder did not record as theirs in time).",
    )
    reason: str | None = Field(
        default=None,
        description="Why the router made this change on its own, when no message or actor"
        " caused it: `owner_offline` (casewire.case.status_changed to queued: the owner has been"
        " offline longer than the grace, CASEWIRE_ROUTER_OFFLINE_GRACE; `agent_id` is that"
        " owner).",
    )
    saved_reply_id: str | None = Field(
        default=None,
        description="casewire.case.responded: the saved reply the agent answered with (a reply"
        " recorded through the API naming one).",
    )


class AgentData(BaseModel):
    """The data of `casewire.agent.updated`: an agent created or changed through the API (key:
    `agent:<id>`), with who did it and the waiting cases the change gave them."""

    model_config = ConfigDict(frozen=True)

    agent_id: str
    teams: list[str]
    languages: list[str]
    capacity: int
    online: bool
    created: bool
    actor: ActorRef
    assigned_case_ids: list[str] = Field(
        default_factory=list,
        description="Waiting cases the change assigned (each also has its casewire.case.assigned).",
    )


class SavedReplyData(BaseModel):
    """The data of `casewire.saved_reply.updated`: a saved reply created, changed or removed
    through the API (key: `saved-reply:<id>`), by whom, and the version in force after it."""

    model_config = ConfigDict(frozen=True)

    saved_reply_id: str
    change: Literal["created", "updated", "removed"] = Field(
        description="created: no reply had this id; updated: the API wrote a new version (of a"
        " reply of the API, or over the saved-replies file's); removed: the API version was"
        " deleted (the file's, if any, is in force again)."
    )
    source: Literal["file", "api"] | None = Field(
        description="Where the version in force comes from; null: no reply has this id now."
    )
    title: str | None = Field(description="The version in force (null: none).")
    text: dict[str, str] = Field(
        description="The version in force: its text by language (ISO 639-1), with placeholders."
    )
    teams: list[str] = Field(description="The teams it is offered to; empty: every team.")
    tags: list[str]
    actor: ActorRef


class IncidentData(BaseModel):
    """The data of `casewire.incident.opened|updated|closed`: one crisis topic and its cases."""

    model_config = ConfigDict(frozen=True)

    incident_id: str
    topic: str
    status: Literal["open", "closed"]
    opened_at: UtcDatetime
    last_seen_at: UtcDatetime
    case_count: int = Field(ge=1, description="How many cases the incident links so far.")
    added_case_ids: list[str] = Field(
        description="The cases this event linked (all of them for `opened`); a consumer that"
        " wants the whole list accumulates them."
    )


class SlaAlertData(BaseModel):
    """The data of every `casewire.sla.*` event."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    policy_id: str
    clock: ClockName
    target_seconds: int
    started_at: UtcDatetime
    due_at: UtcDatetime
    fraction: float | None = None
    late: bool = False
    elapsed_seconds: float | None = None
    team: str
    priority: Priority
    provisional: bool = Field(
        default=False,
        description="warning/breached: fired after `max_hold` without the router's watermark"
        " having passed the instant (a reply sent in time may still retract it).",
    )
    retracted_alert_id: str | None = Field(
        default=None,
        description="casewire.sla.breach_retracted: the ce_id of the breach it withdraws.",
    )


class WatermarkData(BaseModel):
    """The data of `casewire.router.watermark`: how far in time the router has processed each
    partition of the messages topic that it owns. A copy goes to every partition of the
    case-events topic, after the events it vouches for, so a consumer that has read it on a
    partition has read every event that partition got from those messages."""

    model_config = ConfigDict(frozen=True)

    topic: str = Field(description="The input topic the watermarks are about.")
    partitions: int = Field(ge=1, description="How many partitions that topic has.")
    watermarks: dict[int, UtcDatetime] = Field(
        description="Partition -> every record the broker received before this instant has"
        " been processed and its events committed before this record."
    )
    caught_up: list[int] = Field(
        default_factory=list,
        description="Partitions that had nothing left to process when the mark was written:"
        " their watermark is the instant of that check.",
    )
    replica: str = Field(description="The router replica (its consumer's member) that wrote it.")


class EventRecord(BaseModel):
    """A CloudEvent ready for Kafka: key, `ce_*` headers and JSON value."""

    model_config = ConfigDict(frozen=True)

    key: str
    headers: dict[str, bytes]
    value: bytes


def encode_event(
    *,
    event_id: str,
    event_type: str,
    source: str,
    subject: str,
    time: datetime,
    data: BaseModel,
) -> EventRecord:
    """A CloudEvents 1.0 record in Kafka binary mode, keyed by its subject (the case id).

    The headers are those the SDK's `to_binary` writes for this event, in its order, byte for
    byte (tests/unit/contracts/test_cloudevent_encoding.py holds them equal): written out here
    because the SDK's per-event attribute checks cost more than the whole encoding, on the
    router's hot path. `time` must be timezone-aware (ValueError); `ce_time` is written in UTC.
    """
    for name, attribute in (("id", event_id), ("type", event_type), ("source", source)):
        if not attribute:
            raise ValueError(f"CloudEvent attribute {name!r} must not be empty")
    if time.utcoffset() is None:
        raise ValueError("CloudEvent time must be timezone-aware")
    stamp = (time if time.tzinfo is UTC else utc(time)).isoformat()
    if stamp.endswith("+00:00"):
        stamp = stamp[:-6] + "Z"
    headers = {
        "ce_id": event_id.encode(),
        "ce_type": event_type.encode(),
        "ce_source": source.encode(),
        "ce_subject": subject.encode(),
        "ce_time": stamp.encode(),
        "content-type": b"application/json",
        "ce_specversion": b"1.0",
    }
    value = data.__pydantic_serializer__.to_json(data)
    return EventRecord(key=subject, headers=headers, value=value)


class DecodedEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: str
    source: str
    subject: str | None
    time: UtcDatetime | None
    data: dict[str, Any]


def decode_event(
    headers: Mapping[str, bytes] | Sequence[tuple[str, bytes]], value: bytes, key: bytes | None
) -> DecodedEvent:
    """Parse a CloudEvent in Kafka binary mode; raises ValueError when it is not one."""
    header_map = dict(headers.items() if isinstance(headers, Mapping) else headers)
    try:
        event = from_binary_event(KafkaMessage(headers=header_map, key=key, value=value))
    except Exception as error:  # the SDK raises several unrelated exception types
        raise ValueError(f"not a CloudEvent in binary mode: {error}") from error
    data = event.get_data()
    if isinstance(data, bytes | str):
        data = json.loads(data)
    if not isinstance(data, dict):
        raise ValueError("CloudEvent data is not a JSON object")
    return DecodedEvent(
        id=event.get_id(),
        type=event.get_type(),
        source=event.get_source(),
        subject=event.get_subject(),
        time=event.get_time(),
        data=data,
    )
