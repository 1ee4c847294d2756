"""The case model: a case's state, which customer it belongs to, and the time windows in
which messages join, reopen or burst together."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from casewire_common.events import (
    CaseSnapshot,
    CaseStatus,
    MessageSentiment,
    Priority,
    RoutingDecision,
)
from casewire_common.messages import CanonicalMessage, Channel, Platform, Visibility

from casewire_router.domain.sentiment import Sentiment

CLOSED_STATUSES: frozenset[CaseStatus] = frozenset({"resolved", "no_action"})


@dataclass(frozen=True)
class Placement:
    """Where a case stands for the agents' desks: its team, its owner, and whether it waits in
    the team queue (open, nobody owns it). Who sees a change on their stream is decided from
    the placement before and after it (`domain.desk.sees`)."""

    team: str
    owner: str | None
    waiting: bool


@dataclass
class CaseState:
    """One case as routing sees it: whose it is, where it stands, who owns it."""

    id: str
    conversation_id: str
    customer_id: str
    account_id: str
    platform: Platform
    channel: Channel
    visibility: Visibility
    status: CaseStatus
    priority: Priority
    urgency_score: int
    team: str
    assignee: str | None
    tags: list[str]
    language: str | None
    opened_at: datetime
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    # When the case last went back to its team queue (reopened); None: waiting since opened_at.
    queued_at: datetime | None = None
    # The decision that opened the case: set and stored when the case opens, never read back.
    decision: RoutingDecision | None = None
    # How many events the case has had (`CaseSnapshot.version`): each event counts one.
    version: int = 0
    # The sentiment of its latest customer message, and the most negative one so far.
    sentiment: Sentiment | None = None
    worst_sentiment: Sentiment | None = None
    # Where the case stood after its last event (as stored, then after each event recorded on
    # it): the "before" of its next event. None for a case that has had no event yet.
    placed: Placement | None = field(default=None, compare=False)

    def placement(self) -> Placement:
        """Where the case stands now."""
        waiting = self.assignee is None and self.status not in CLOSED_STATUSES
        return Placement(self.team, self.assignee, waiting)

    def feel(self, sentiment: Sentiment) -> None:
        """A customer message of the case was read: its tone is the latest, maybe the worst."""
        self.sentiment = sentiment
        if sentiment.worse_than(self.worst_sentiment):
            self.worst_sentiment = sentiment

    def snapshot(self) -> CaseSnapshot:
        return CaseSnapshot(
            id=self.id,
            conversation_id=self.conversation_id,
            platform=self.platform,
            channel=self.channel,
            visibility=self.visibility,
            status=self.status,
            priority=self.priority,
            urgency_score=self.urgency_score,
            team=self.team,
            assignee=self.assignee,
            tags=list(self.tags),
            language=self.language,
            opened_at=self.opened_at,
            first_response_at=self.first_response_at,
            resolved_at=self.resolved_at,
            version=self.version,
            sentiment=_sentiment_of(self.sentiment),
            worst_sentiment=_sentiment_of(self.worst_sentiment),
        )


def _sentiment_of(sentiment: Sentiment | None) -> MessageSentiment | None:
    if sentiment is None:
        return None
    return MessageSentiment(label=sentiment.label, score=sentiment.score)


CustomerKey = tuple[str, str, str]  # platform, brand account, customer


def customer_key(message: CanonicalMessage) -> CustomerKey:
    """The customer a message is from (or to): one customer per platform and brand account."""
    return (message.platform, message.account_id, message.customer_id)


@dataclass(frozen=True)
class CaseWindows:
    """How close in time messages must be to join, reopen or burst together."""

    reopen: timedelta = timedelta(days=7)
    merge: timedelta = timedelta(hours=24)
    repeat_contact: timedelta = timedelta(hours=24)  # earlier messages this recent: urgency
    incident: timedelta = timedelta(minutes=15)
    incident_threshold: int = 5


def customer_of(case: CaseState) -> CustomerKey:
    """The customer whose case it is."""
    return (case.platform, case.account_id, case.customer_id)
