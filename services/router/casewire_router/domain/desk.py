"""An agent's own work: whose desk a change reaches, where a resumed stream may go on, and
when an offline agent's cases go back to the queue. Pure decisions over plain data;
docs/agent-desk.md tells the story.

A desk is a person (agent, lead or admin) and the teams whose queues they work. Every case
event the router commits, and every reply-lease change, is one entry of the feed, carrying
where the case stood before and after it (`Placement`: team, owner, waiting); `sees` decides
from that alone whether a desk's stream carries it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from casewire_common import events as ev

from casewire_router.domain.access import Actor, require_person
from casewire_router.domain.assignment import AgentState
from casewire_router.domain.case import CLOSED_STATUSES, CaseState, Placement

# The stream's reply-lease events (not published on Kafka: a lease lives seconds).
LEASE_TAKEN = "casewire.reply_lease.taken"
LEASE_RELEASED = "casewire.reply_lease.released"


@dataclass(frozen=True)
class Desk:
    """Whose stream it is: the person, the teams whose queues they see, and whether they
    oversee those teams (a lead or an admin also sees the teams' collisions)."""

    person: str
    teams: frozenset[str]
    oversees: bool


@dataclass(frozen=True)
class FeedEntry:
    """One change as the desks' feed keeps it: the case, the event type, where the case stood
    after and before it (None: the case's first event), and the event's data as published."""

    case_id: str
    type: str
    after: Placement
    before: Placement | None
    data: bytes


@dataclass(frozen=True)
class FeedRow(FeedEntry):
    """A committed feed entry and its position (the stream's event id)."""

    id: int


def desk_of(actor: Actor, roster_teams: list[str] | None) -> Desk:
    """The actor's desk: an agent's teams are their roster teams (already the actor's); a lead
    or an admin works the teams of their token and, if they are on the roster too, of the
    roster. People only: a service token has no desk."""
    require_person(actor, "your own work (/v1/me)")
    teams = actor.teams
    if actor.role != "agent":
        teams = teams | frozenset(roster_teams or ())
    return Desk(actor.id, teams, oversees=actor.role in ("lead", "admin"))


def sees(desk: Desk, entry: FeedEntry) -> bool:
    """Whether a change reaches the desk: a case they own, or owned until this change; a case
    waiting in one of their teams' queues before or after it (it joined or left the queue); and
    for a lead or an admin, a collision on one of their teams' cases. Lease changes are entries
    of their case like any other."""
    after, before = entry.after, entry.before
    if desk.person == after.owner or (before is not None and desk.person == before.owner):
        return True
    if after.waiting and after.team in desk.teams:
        return True
    if before is not None and before.waiting and before.team in desk.teams:
        return True
    return desk.oversees and entry.type == ev.CASE_COLLISION and after.team in desk.teams


def resumes(last_seen: int, oldest: int | None, newest: int) -> bool:
    """Whether a stream can go on exactly after `last_seen`: it is a position the feed has
    handed out (`newest`: the last id it gave) and no entry after it has been pruned (`oldest`:
    the oldest entry kept; None when none is). Otherwise the client must reload its cases
    (the stream says `reset`). Ids of rolled-back writes leave gaps, so this may ask for a
    reload that was not strictly needed, never the other way round."""
    if last_seen > newest:
        return False
    if oldest is None:
        return last_seen == newest
    return last_seen >= oldest - 1


def return_due(
    case: CaseState,
    agents: Mapping[str, AgentState],
    offline_since: Mapping[str, datetime],
    cutoff: datetime,
) -> bool:
    """Whether an open case goes back to its team queue: its owner is offline and has been
    since `cutoff` or earlier (now minus the grace). An owner back online keeps it."""
    if case.status in CLOSED_STATUSES or case.assignee is None:
        return False
    owner = agents.get(case.assignee)
    since = offline_since.get(case.assignee)
    return owner is not None and not owner.online and since is not None and since <= cutoff
