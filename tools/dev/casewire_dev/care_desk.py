"""The demo's care desk: agents closing cases once their conversation has gone quiet.

The corpus holds what customers and brands wrote, not when a care agent closed the case, so
the desk resolves a conversation's case `after` (corpus time, divided by the replay speed)
once the conversation's last message has been posted. Resolving frees the agent and the
router drains the team's queue, which is what the demo's summary then shows.

`ResolutionQueue` decides what is due (pure, testable without services); `run_care_desk`
calls the router's case API (`POST /v1/cases/{id}/resolve`, client from `router_client`).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

import httpx

from casewire_dev.replay import ReplayProgress, ScheduledMessage

# A corpus conversation that ends is one the customer considers settled: two corpus minutes of
# quiet, then the agent closes the case (two seconds of demo at 60×).
RESOLVE_AFTER = timedelta(minutes=2)
# How long a due resolution waits for its case to appear on the case-events topic before the
# desk gives up on it (the router lags behind the replay under load).
CASE_WAIT_SECONDS = 60.0
TICK_SECONDS = 0.25
POST_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.5
CLOSED_STATUSES = frozenset({"resolved", "no_action"})


@dataclass(frozen=True, order=True)
class PlannedResolution:
    """Resolve `conversation_id`'s case `hold_seconds` after the replay has posted the plan's
    message number `last_message_index`, the conversation's last."""

    last_message_index: int
    conversation_id: str
    hold_seconds: float


def plan_resolutions(
    plan: Sequence[ScheduledMessage], *, speed: float, after: timedelta = RESOLVE_AFTER
) -> list[PlannedResolution]:
    """One resolution per conversation of the replay plan, in the order their last messages
    are posted."""
    if speed <= 0 or after < timedelta(0):
        raise ValueError("speed must be positive and the resolution delay not negative")
    last_index = {item.conversation.conversation_id: index for index, item in enumerate(plan)}
    hold = after.total_seconds() / speed
    return sorted(
        PlannedResolution(index, conversation_id, hold)
        for conversation_id, index in last_index.items()
    )


class CaseDirectory(Protocol):
    """Where the desk learns a conversation's case (the demo summary, fed from Kafka)."""

    def case_of(self, conversation_id: str) -> tuple[str, str] | None:
        """(case id, status) of the conversation's latest case; None while none is known."""
        ...


@dataclass
class ResolutionQueue:
    """Which resolutions are due, given how far the replay got and the time (in seconds)."""

    planned: list[PlannedResolution]
    _next: int = field(default=0, init=False)  # the first planned one not yet posted
    _due: list[tuple[float, str]] = field(default_factory=list, init=False)  # (due at, conv.)

    def due(self, *, posted_messages: int, now: float) -> list[str]:
        """Conversations whose case should be resolved by `now`, each returned once.

        `posted_messages` counts the plan's messages the replay has handled: a conversation's
        hold starts when its last message is among them, so a replay running late delays
        the resolution rather than resolving a case its customer is still writing to.
        """
        planned = self.planned
        while (
            self._next < len(planned) and planned[self._next].last_message_index < posted_messages
        ):
            resolution = planned[self._next]
            heapq.heappush(self._due, (now + resolution.hold_seconds, resolution.conversation_id))
            self._next += 1
        ready = []
        while self._due and self._due[0][0] <= now:
            ready.append(heapq.heappop(self._due)[1])
        return ready

    @property
    def finished(self) -> bool:
        return self._next == len(self.planned) and not self._due


@dataclass
class DeskProgress:
    """What the care desk has done so far, for the live summary."""

    resolved: int = 0
    already_closed: int = 0  # closed before the desk came to it (no_action, or a 409)
    failed: int = 0  # an API error, or no case ever seen for the conversation
    last_failure: str | None = None


@dataclass
class _Waiting:
    conversation_id: str
    since: float


def router_client(router_url: str, token: str) -> httpx.AsyncClient:
    """A client for the router's case API, with a caller's bearer token."""
    return httpx.AsyncClient(
        base_url=router_url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
    )


async def run_care_desk(
    planned: list[PlannedResolution],
    cases: CaseDirectory,
    replay_progress: ReplayProgress,
    client: httpx.AsyncClient,
    progress: DeskProgress,
    *,
    case_wait_seconds: float = CASE_WAIT_SECONDS,
) -> None:
    """Resolve each planned conversation's case when due, until all are done or cancelled.

    API errors are counted in `progress`, never raised: a customer writing again may have
    reopened or re-closed a case under the desk's feet, and the demo goes on.
    """
    loop = asyncio.get_running_loop()
    queue = ResolutionQueue(planned)
    waiting: list[_Waiting] = []
    while not (queue.finished and not waiting):
        now = loop.time()
        posted = replay_progress.posted + replay_progress.rejected
        waiting.extend(_Waiting(c, now) for c in queue.due(posted_messages=posted, now=now))
        still_waiting = []
        for item in waiting:
            case = cases.case_of(item.conversation_id)
            if case is not None:
                await _resolve(client, case, progress)
            elif loop.time() - item.since > case_wait_seconds:
                progress.failed += 1
                progress.last_failure = f"{item.conversation_id}: no case seen on Kafka"
            else:
                still_waiting.append(item)
        waiting = still_waiting
        await asyncio.sleep(TICK_SECONDS)


async def _resolve(
    client: httpx.AsyncClient, case: tuple[str, str], progress: DeskProgress
) -> None:
    case_id, status = case
    if status in CLOSED_STATUSES:
        progress.already_closed += 1
        return
    failure = ""
    for attempt in range(POST_ATTEMPTS):
        if attempt:
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
        try:
            response = await client.post(f"/v1/cases/{case_id}/resolve")
        except httpx.TransportError as error:
            failure = f"no answer ({type(error).__name__})"
            continue
        if response.status_code == 200:
            progress.resolved += 1
            return
        if response.status_code == 409:
            progress.already_closed += 1
            return
        failure = f"{response.status_code} {response.text[:200]}"
        if response.status_code < 500:
            break
    progress.failed += 1
    progress.last_failure = f"resolve {case_id}: {failure}"
