"""Who may do what through the case and agent API: pure decisions over an actor and a case.

Roles (DESIGN.md, "Agents (router)"): an `agent` works their own cases and claims from their
teams' queues; a `lead` acts on every case of their teams, reassigns, changes capacity and
presence there; an `admin` does everything, agents included; a `service` (a machine client)
has only the scopes its token names. Anything not allowed is refused with `Forbidden`, whose
message says what was missing (HTTP 403).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from casewire_common.events import ActorRef

from casewire_router.domain.case import CaseState

Role = Literal["agent", "lead", "admin", "service"]
ROLES: tuple[Role, ...] = ("agent", "lead", "admin", "service")
# A token holding several person roles acts with the strongest.
PERSON_ROLES_BY_STRENGTH: tuple[Role, ...] = ("admin", "lead", "agent")


class Scope(StrEnum):
    """What a machine client may do: each `service` token names its scopes."""

    CASES_READ = "cases:read"
    CASES_WRITE = "cases:write"
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    CUSTOMERS_READ = "customers:read"
    SAVED_REPLIES_READ = "saved-replies:read"
    SAVED_REPLIES_WRITE = "saved-replies:write"


class CaseAction(StrEnum):
    """What an actor does to a case, for the permission check."""

    READ = "read"
    CLAIM = "claim"  # take a waiting case (an agent for themselves)
    ASSIGN = "assign"  # give a case to a named agent (claim for another, reassign)
    WORK = "work"  # pending, resolve, no-action, reopen, reply


class Forbidden(Exception):
    """A known caller without the right to this action (HTTP 403)."""


@dataclass(frozen=True)
class Actor:
    """The caller, as their verified token and the roster say: `teams` are an agent's roster
    teams or a lead's teams from the token (an admin's and a service's are not used)."""

    id: str
    role: Role
    teams: frozenset[str] = frozenset()
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    name: str | None = None  # how the person signs a reply (the token's `name`), if given

    @property
    def ref(self) -> ActorRef:
        """How events name the actor."""
        return ActorRef(id=self.id, role=self.role)

    @property
    def is_person(self) -> bool:
        return self.role != "service"


def strongest_role(roles: Iterable[str]) -> Role | None:
    """The role a token acts with: the strongest person role it holds, else `service`."""
    held = set(roles)
    for role in PERSON_ROLES_BY_STRENGTH:
        if role in held:
            return role
    return "service" if "service" in held else None


def require_scope(actor: Actor, scope: Scope) -> None:
    """Machine clients need the scope; people are judged by role elsewhere."""
    if actor.role == "service" and scope not in actor.scopes:
        raise Forbidden(f"the {actor.id!r} token lacks the {scope} scope")


def require_person(actor: Actor, what: str) -> None:
    if not actor.is_person:
        raise Forbidden(f"{what} is for people (agents, leads, admins), not service tokens")


def require_role(actor: Actor, *roles: Role, what: str) -> None:
    if actor.role not in roles:
        raise Forbidden(f"{what} needs the role {' or '.join(roles)}; the token has {actor.role}")


def may_see_team(actor: Actor, team: str) -> bool:
    """Whether the actor may see this team's queue and cases."""
    if actor.role in ("admin", "service"):
        return actor.role == "admin" or Scope.CASES_READ in actor.scopes
    return team in actor.teams


def require_team(actor: Actor, team: str) -> None:
    require_scope(actor, Scope.CASES_READ)
    if not may_see_team(actor, team):
        raise Forbidden(f"{actor.id!r} is not in team {team!r}")


def require_case_action(
    actor: Actor,
    case: CaseState,
    action: CaseAction,
    assignee: str | None = None,
    *,
    force: bool = False,
) -> None:
    """Whether `actor` may do `action` to `case`; `assignee` is who a claim or an assignment
    gives the case to, `force` whether it goes over capacity or presence. Agents act as
    themselves on their own cases and their teams' queues; leads on their teams' cases; admins
    everywhere; services by scope."""
    if actor.role == "service":
        require_scope(actor, Scope.CASES_READ if action == CaseAction.READ else Scope.CASES_WRITE)
        return
    if action == CaseAction.WORK and assignee is not None and assignee != actor.id:
        raise Forbidden("a person's reply is their own: only a service token names its author")
    if actor.role == "admin":
        return
    if case.team not in actor.teams:
        # The case's team is not named: nothing about other teams leaks.
        raise Forbidden(f"case {case.id} is not in one of {actor.id!r}'s teams")
    if actor.role == "lead" or action == CaseAction.READ:
        return
    # An agent, on a case of one of their teams.
    if action == CaseAction.ASSIGN or (assignee is not None and assignee != actor.id):
        raise Forbidden("agents take cases for themselves; a lead assigns them to others")
    if force:
        raise Forbidden("only a lead goes over an agent's capacity or presence (force)")
    if action == CaseAction.WORK and case.assignee != actor.id:
        owner = case.assignee or "nobody (it is in the queue)"
        raise Forbidden(f"case {case.id} is owned by {owner}, not {actor.id!r}")


def require_lease(actor: Actor, case: CaseState) -> None:
    """Taking or renewing a case's reply lease: a person who may reply to the case (its owner
    agent, a lead of its team, an admin)."""
    require_person(actor, "a reply lease")
    require_case_action(actor, case, CaseAction.WORK)


def require_lease_release(actor: Actor, case: CaseState, holder: str | None) -> None:
    """Releasing a case's reply lease (`holder`: who holds it live, None: nobody): its holder,
    or a lead of the case's team or an admin (breaking a forgotten lease); anyone who sees the
    case when nothing is held (there is nothing to release)."""
    require_person(actor, "a reply lease")
    if holder == actor.id:
        return
    require_case_action(actor, case, CaseAction.READ)
    if holder is None or actor.role in ("lead", "admin"):
        return
    raise Forbidden(
        f"the reply lease on case {case.id} is held by {holder!r}: only they, a lead of the"
        " team or an admin may release it"
    )


class AgentChange(StrEnum):
    PRESENCE = "presence"  # online or offline
    CAPACITY = "capacity"
    DEFINITION = "definition"  # create, or replace teams and languages


def require_agent_change(
    actor: Actor, agent_id: str, agent_teams: Iterable[str], changes: set[AgentChange]
) -> None:
    """Changing an agent: admins and `agents:write` services anything; a lead the presence and
    capacity of their teams' agents; an agent only their own presence."""
    if actor.role == "service":
        require_scope(actor, Scope.AGENTS_WRITE)
        return
    if actor.role == "admin":
        return
    allowed = {AgentChange.PRESENCE, AgentChange.CAPACITY} if actor.role == "lead" else set()
    if actor.role == "lead" and changes <= allowed and actor.teams & set(agent_teams):
        return
    if actor.role == "agent" and changes <= {AgentChange.PRESENCE} and agent_id == actor.id:
        return
    wanted = ", ".join(sorted(changes))
    raise Forbidden(
        f"{actor.id!r} ({actor.role}) may not change the {wanted} of agent {agent_id!r}"
    )


def visible_agents(actor: Actor, teams_by_agent: dict[str, list[str]]) -> set[str] | None:
    """The agents the actor may list (None: all of them): leads see their teams' agents,
    agents see themselves."""
    if actor.role == "service":
        require_scope(actor, Scope.AGENTS_READ)
        return None
    if actor.role == "admin":
        return None
    if actor.role == "lead":
        return {agent for agent, teams in teams_by_agent.items() if actor.teams & set(teams)}
    return {actor.id} & set(teams_by_agent)


def may_read_saved_reply(actor: Actor, reply_teams: Iterable[str]) -> bool:
    """Saved replies are read by admins and `saved-replies:read` services (all), and by agents
    and leads for the replies of their teams and those for every team (no teams)."""
    if actor.role == "service":
        return Scope.SAVED_REPLIES_READ in actor.scopes
    teams = set(reply_teams)
    return actor.role == "admin" or not teams or bool(actor.teams & teams)


def require_saved_reply_read(actor: Actor, reply_id: str, reply_teams: Iterable[str]) -> None:
    require_scope(actor, Scope.SAVED_REPLIES_READ)
    if not may_read_saved_reply(actor, reply_teams):
        raise Forbidden(f"saved reply {reply_id!r} is not for a team of {actor.id!r}")


def require_saved_reply_change(
    actor: Actor,
    reply_id: str,
    current_teams: Iterable[str] | None,
    new_teams: Iterable[str] | None,
) -> None:
    """Writing a saved reply (or removing its API version): admins and `saved-replies:write`
    services any; a lead only a reply that is, and stays, for their teams alone (`current_teams`:
    those of the version in force, None for a new id; `new_teams` None for a removal). A reply
    for every team is an admin's."""
    if actor.role == "service":
        require_scope(actor, Scope.SAVED_REPLIES_WRITE)
        return
    if actor.role == "admin":
        return
    require_role(actor, "lead", what="changing saved replies")
    for teams in (current_teams, new_teams):
        if teams is None:
            continue
        listed = set(teams)
        if not listed:
            raise Forbidden(
                f"saved reply {reply_id!r} is for every team: only an admin changes such replies"
            )
        if not listed <= actor.teams:
            raise Forbidden(
                f"saved reply {reply_id!r} is for teams {actor.id!r} does not lead:"
                f" {', '.join(sorted(listed - actor.teams))}"
            )


def customer_teams(actor: Actor) -> frozenset[str] | None:
    """The teams whose cases make up a customer's history for this actor (None: every team):
    admins and `customers:read` services see all, agents and leads their teams' cases only."""
    if actor.role == "service":
        require_scope(actor, Scope.CUSTOMERS_READ)
        return None
    return None if actor.role == "admin" else actor.teams
