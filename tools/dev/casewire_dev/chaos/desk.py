"""The chaos run's care desk: agents resolve their cases a few seconds after answering them.

Without it every case stays open, agents fill up once and the capacity check sees nothing
move. With it, places free up all run long, the router drains its queues into them, and the
capacity replay has many moments to check — while faults hit the router that does it. A
resolution goes through the router's case API to any replica that answers (as a load
balancer would send it), retried on a transport error or a 5xx.
"""

from __future__ import annotations

import asyncio
import heapq
import random
from collections import Counter
from collections.abc import Sequence

import httpx
from casewire_common import events as ev

from casewire_dev.chaos.capture import Record
from casewire_dev.chaos.fleet import Fleet

HOLD_SECONDS = (2.0, 6.0)  # from the first brand reply to the resolution
TICK_SECONDS = 0.25
ATTEMPTS = 8  # backing off from 0.5 s: a minute, longer than a killed router takes to return
CASE_EVENT_PREFIX = "casewire.case."
CLOSED = frozenset({"resolved", "no_action"})


class CareDesk:
    """Watches case events as the run reads them and resolves answered, assigned cases."""

    def __init__(self, fleet: Fleet, token: str, seed: int) -> None:
        self._fleet = fleet
        self._headers = {"authorization": f"Bearer {token}"}
        self._rng = random.Random(seed)
        self._seen = 0  # case-event records looked at so far
        self._due: list[tuple[float, str]] = []  # (loop time, case id)
        self._planned: set[str] = set()
        self.resolved = 0
        self.refused = 0  # answered 4xx: closed meanwhile, or reopened and moved on
        self.refusals: Counter[str] = Counter()  # by status and error code
        self.failed: list[str] = []
        self.unfinished = 0

    @property
    def pending(self) -> list[str]:
        """Cases planned for resolution and not resolved yet, in id order."""
        return sorted(case_id for _, case_id in self._due)

    def see(self, records: Sequence[Record]) -> None:
        """Plan a resolution for each case that is, in its latest snapshot, answered and held
        by an agent (answered while queued, a case is resolved once the queue gives it out)."""
        now = asyncio.get_running_loop().time()
        for record in records[self._seen :]:
            if not (record.header("ce_type") or "").startswith(CASE_EVENT_PREFIX):
                continue
            try:
                event = ev.decode_event(record.headers, record.value, None)
            except ValueError:
                continue  # the oracle reports undecodable records
            case = event.data.get("case", {})
            case_id = case.get("id")
            held = case.get("assignee") and case.get("status") not in CLOSED
            if case_id and held and case.get("first_response_at") and case_id not in self._planned:
                self._planned.add(case_id)
                heapq.heappush(self._due, (now + self._rng.uniform(*HOLD_SECONDS), case_id))
        self._seen = len(records)

    async def run(self) -> None:
        """Resolve each planned case at its time, until cancelled."""
        loop = asyncio.get_running_loop()
        working: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=5.0, headers=self._headers) as client:
            try:
                while True:
                    while self._due and self._due[0][0] <= loop.time():
                        _, case_id = heapq.heappop(self._due)
                        task = asyncio.create_task(self._resolve(client, case_id))
                        working.add(task)
                        task.add_done_callback(working.discard)
                    await asyncio.sleep(TICK_SECONDS)
            finally:
                # Planned or in flight when the run stopped following (a frozen router holds
                # a request until its timeout): neither resolved nor failed.
                self.unfinished = len(working) + len(self._due)
                for task in working:
                    task.cancel()
                await asyncio.gather(*working, return_exceptions=True)

    async def _resolve(self, client: httpx.AsyncClient, case_id: str) -> None:
        last = ""
        for attempt in range(ATTEMPTS):
            routers = [replica for replica in self._fleet.of("router") if replica.running]
            if not routers:
                last = "no router replica running"
            else:
                replica = routers[attempt % len(routers)]
                try:
                    response = await client.post(f"{replica.url}/v1/cases/{case_id}/resolve")
                except httpx.TransportError as error:
                    last = f"{replica.name}: {type(error).__name__}"
                else:
                    if response.status_code < 300:
                        self.resolved += 1
                        return
                    if response.status_code < 500:
                        self.refused += 1
                        self.refusals[f"{response.status_code} {_error_code(response)}"] += 1
                        return
                    last = f"{replica.name}: {response.status_code}"
            await asyncio.sleep(min(0.5 * 2**attempt, 10.0))
        self.failed.append(f"{case_id}: {last}")


def _error_code(response: httpx.Response) -> str:
    """The API's reason code (`{"error", "detail"}`), if the answer has one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""
