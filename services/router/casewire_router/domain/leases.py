"""Collision avoidance: reply leases, and when a reply collides. Pure decisions over plain
data; docs/agent-desk.md tells the story.

A person about to answer a case takes its reply lease (a few seconds, renewed while they
type); others are told who holds it. A reply collides when it is not the work of the one
visibly working the case: the holder of a live lease, else the owner. The rule the router
applies is only ever about who is known to have written a reply:

- a reply recorded through the API names its author: it collides when a live lease is held by
  someone else, or, with no lease, when the case has another owner (a case nobody owns is free
  to answer);
- a reply seen on a platform (an echo) names only the brand: with no live lease it is presumed
  the owner's and never collides (a lead must see two people answering, not every reply sent
  from a platform's own app); during someone's live lease the holder may still record it as
  theirs (by its platform message id) within a short window, and it collides if they do not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage

from casewire_router.domain.case import CaseState
from casewire_router.domain.outcome import RoutingOutcome

ReplySource = Literal["api", "platform"]


@dataclass(frozen=True)
class Lease:
    """A live reply lease: who is answering the case, until when (renewed while they type)."""

    case_id: str
    holder: str
    expires_at: datetime


@dataclass(frozen=True)
class LeaseAttempt:
    """What asking for a lease gave: the live lease (the asker's, or the holder's who kept
    it), whether the asker has it, and whether they had it already (a renewal)."""

    lease: Lease
    taken: bool
    renewed: bool


@dataclass(frozen=True)
class LeaseEcho:
    """A brand reply seen on a platform while `lease_holder` held the case's lease: theirs if
    they record it by `decide_at`, a collision otherwise (`collided` once counted as one)."""

    message_id: str
    case_id: str
    lease_holder: str
    sent_at: datetime
    decide_at: datetime
    collided: bool = False


def reply_collides(owner: str | None, author: str, lease_holder: str | None) -> bool:
    """Whether a reply whose author is known collides: with a live lease, unless its holder
    wrote it; with none, unless the owner did (or nobody owns the case)."""
    if lease_holder is not None:
        return author != lease_holder
    return owner is not None and author != owner


def echoes_to_hold(
    echoes: Iterable[tuple[CanonicalMessage, str]],
    holders: Mapping[str, str],
    decide_at: datetime,
) -> list[LeaseEcho]:
    """The brand replies seen on a platform, each with the case it joined, that came while
    someone held the case's lease (`holders`: case id -> holder): held for the holder to
    claim until `decide_at`. The others are presumed the owner's: no collision."""
    return [
        LeaseEcho(message.id, case_id, holders[case_id], message.sent_at, decide_at)
        for message, case_id in echoes
        if case_id in holders
    ]


def collide(
    case: CaseState,
    outcome: RoutingOutcome,
    message_id: str,
    *,
    author: str | None,
    lease_holder: str | None,
    source: ReplySource,
    at: datetime | None = None,
) -> None:
    """Record `casewire.case.collision` on the case: `author` replied (None: unknown, an
    echo) while `lease_holder` held the lease or another person owned the case."""
    outcome.emit(
        ev.CASE_COLLISION,
        case,
        message_id,
        at=at,
        agent_id=author,
        lease_holder=lease_holder,
        reply_source=source,
    )
