"""The service's own Prometheus metrics, beside faststream's and the outbox relay's.

Business time by agent (`casewire_sla_agent_response_seconds`) is measured here rather than in
the router, which has the agents: business time is the open time of a clock's calendar with its
pauses out, and only this service has both - the policy file's calendars and each clock's
pauses, under the policy its case selects at each moment. The router would need the policy
file, the calendar arithmetic and the pause rules as a second copy to keep in step. The roster
is the smaller thing to share: the agents file, read once at start (`domain/roster.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import get_args

from casewire_common.events import Priority
from casewire_common.messages import Channel, Platform
from casewire_common.metrics import RESPONSE_TIME_BUCKETS, precreate
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from casewire_sla.clock_service import CommittedChanges, FiredAlert, Fulfilment
from casewire_sla.domain.clock_record import ClockRecord
from casewire_sla.domain.policies import CLOCKS
from casewire_sla.domain.roster import Roster

# Label values outside the contract's enums (or not stored, on older clocks) count here, so
# that a label never takes more values than the contract has.
UNKNOWN = "unknown"
_PLATFORMS = frozenset(get_args(Platform))
_CHANNELS = frozenset(get_args(Channel))
_PRIORITIES = frozenset(get_args(Priority))
_ALERT_KINDS = ("warning", "breach")
_RESPONSE_TIMES = ("business", "calendar")


def _bounded(value: str | None, allowed: frozenset[str]) -> str:
    return value if value is not None and value in allowed else UNKNOWN


def clock_labels(clock: ClockRecord) -> dict[str, str]:
    """clock, policy, team and priority: the labels of every per-clock series. `policy` (ids
    of the policy file) tells a contract's clock from an additive policy's of the same case."""
    return {
        "clock": clock.clock,
        "policy": clock.policy_id,
        "team": clock.team or UNKNOWN,
        "priority": _bounded(clock.priority, _PRIORITIES),
    }


def response_labels(clock: ClockRecord) -> dict[str, str]:
    """The labels of a response-time observation, besides `time`."""
    return {
        **clock_labels(clock),
        "platform": _bounded(clock.platform, _PLATFORMS),
        "channel": _bounded(clock.channel, _CHANNELS),
    }


def response_times(fulfilment: Fulfilment) -> dict[str, float]:
    """Seconds the clock ran, by `time` label: open calendar time (pauses out) and wall time."""
    return {
        "business": max(0.0, fulfilment.business.total_seconds()),
        "calendar": fulfilment.calendar.total_seconds(),
    }


def counts_for_agents(fulfilment: Fulfilment) -> bool:
    """Whether a fulfilled clock is observed in the per-agent figures: only the contract's.

    A case runs one track of clocks under its contract (the first matching policy that is not
    additive) and one more per matching additive policy, and one reply fulfils the
    first_response clock of every track at once (domain/policies.py). Observing each would
    count the case once per policy that applies, and mix calendars: a channel expectation
    counted on `always` beside a contract counted in office hours. The contract is the one
    track every case has at most one of, and its calendar is the business time the team is
    held to, so the per-agent figures take its clocks alone: one observation per case and
    clock cycle. A case no contract matches (a policy file without a catch-all) is left out
    here; its additive clocks stay in `casewire_sla_response_seconds`, by policy.
    """
    return not fulfilment.clock.additive


class SlaMetrics:
    def __init__(self, registry: CollectorRegistry, roster: Roster | None = None) -> None:
        self.roster = roster or Roster()
        self.breaches = Counter(
            "casewire_sla_breaches_total",
            "SLA breaches fired, by clock, policy, team and priority.",
            ["clock", "policy", "team", "priority"],
            registry=registry,
        )
        self.warnings = Counter(
            "casewire_sla_warnings_total",
            "SLA warnings fired, by clock, policy, team and priority.",
            ["clock", "policy", "team", "priority"],
            registry=registry,
        )
        self.late_alerts = Counter(
            "casewire_sla_late_alerts_total",
            "Warnings and breaches that fired more than 1 s after their instant, by clock.",
            ["clock"],
            registry=registry,
        )
        self.clocks_started = Counter(
            "casewire_sla_clocks_started_total",
            "Clocks started, by clock, policy, team and priority.",
            ["clock", "policy", "team", "priority"],
            registry=registry,
        )
        self.open_clocks = Gauge(
            "casewire_sla_open_clocks",
            "Clocks open now, running or paused (breached ones included until they end), by clock.",
            ["clock"],
            registry=registry,
        )
        self.time_to_breach = Gauge(
            "casewire_sla_time_to_breach_seconds",
            "Seconds until the earliest due_at of running clocks not breached yet (negative"
            " when overdue and not fired yet), by clock; absent when none runs.",
            ["clock"],
            registry=registry,
        )
        self.response_seconds = Histogram(
            "casewire_sla_response_seconds",
            "How long clocks ran until fulfilled (first/next reply, resolution), in business"
            " time (open calendar time, pauses out) and calendar (wall) time.",
            ["clock", "time", "policy", "team", "priority", "platform", "channel"],
            buckets=RESPONSE_TIME_BUCKETS,
            registry=registry,
        )
        self.agent_response_seconds = Histogram(
            "casewire_sla_agent_response_seconds",
            "How long the contract's clocks ran until fulfilled, in business time (open"
            " calendar time, pauses out), by clock, the case's team and its assignee when the"
            " clock ended (roster agents, else other; unassigned). Additive policies' clocks"
            " are left out: a case counts once.",
            ["clock", "team", "agent"],
            buckets=RESPONSE_TIME_BUCKETS,
            registry=registry,
        )
        self.clocks_fulfilled = Counter(
            "casewire_sla_clocks_fulfilled_total",
            "Clocks fulfilled, by clock, policy, team, priority and whether within their"
            ' target; attainment = within_target="true" / all.',
            ["clock", "policy", "team", "priority", "within_target"],
            registry=registry,
        )
        self.retracted = Counter(
            "casewire_sla_breaches_retracted_total",
            "Breaches withdrawn because a reply sent by due_at was processed after the breach"
            " fired (or its case was absorbed into another), by clock, policy, team and"
            " priority; breaches that stand ="
            " casewire_sla_breaches_total - this.",
            ["clock", "policy", "team", "priority"],
            registry=registry,
        )
        self.provisional = Counter(
            "casewire_sla_provisional_alerts_total",
            "Warnings and breaches fired after max_hold before the router's watermark had passed"
            " their instant (a lagging or stopped router), by clock and kind.",
            ["clock", "kind"],
            registry=registry,
        )
        self.attainment = Gauge(
            "casewire_sla_attainment_clocks",
            "Clocks ended by what they waited for, by clock, policy and final outcome (a"
            " retracted breach counts as met; a clock re-ended by an earlier reply, or started"
            " earlier by a customer message, read later counts by the reply against the new"
            " start; an absorbed case's clocks not at all), as stored: every replica reports"
            " the same total.",
            ["clock", "policy", "outcome"],
            registry=registry,
        )
        self.watermark_delay = Gauge(
            "casewire_sla_watermark_delay_seconds",
            "How far the router's low watermark is behind now (alerts due after it wait);"
            " absent until every partition has one.",
            registry=registry,
        )
        self._timed_clocks: set[str] = set()
        self.case_events = Counter(
            "casewire_sla_case_events_total",
            "Case events read, by outcome (applied, duplicate, dead_lettered).",
            ["outcome"],
            registry=registry,
        )
        precreate(self.late_alerts, [(clock,) for clock in CLOCKS])
        precreate(self.provisional, [(clock, kind) for clock in CLOCKS for kind in _ALERT_KINDS])
        precreate(self.case_events, [("applied",), ("duplicate",), ("dead_lettered",)])
        # Label sets of the per-clock series already at 0 (see `_precreate_clock`).
        self._clock_label_sets: set[tuple[str, ...]] = set()

    def _precreate_clock(self, clock: ClockRecord) -> None:
        """A clock's labels carry its case's team, which the SLA service does not know before
        the case: its breach, warning, retraction and fulfilment series start at 0 when the
        clock starts, so that their first event counts in rate() and increase()."""
        response = response_labels(clock)
        key = tuple(response.values())
        if key in self._clock_label_sets:
            return
        self._clock_label_sets.add(key)
        labels = clock_labels(clock)
        for counter in (self.breaches, self.warnings, self.retracted):
            precreate(counter, [labels])
        precreate(
            self.clocks_fulfilled, [{**labels, "within_target": met} for met in ("true", "false")]
        )
        precreate(self.response_seconds, [{**response, "time": t} for t in _RESPONSE_TIMES])

    def start_roster_series(self) -> None:
        """Start each roster agent's series at zero, for each of their teams and every clock,
        so that a leaderboard shows those who answered nothing yet (and `rate()` sees their
        first observation)."""
        for agent, teams in self.roster.teams.items():
            for team in teams:
                for clock in CLOCKS:
                    self.agent_response_seconds.labels(clock, team, agent)

    def record_alerts(self, fired: Iterable[FiredAlert]) -> None:
        for alert in fired:
            counter = self.breaches if alert.kind == "breach" else self.warnings
            counter.labels(**clock_labels(alert.clock)).inc()
            if alert.late:
                self.late_alerts.labels(alert.clock.clock).inc()
            if alert.provisional:
                self.provisional.labels(alert.clock.clock, alert.kind).inc()

    def record_batch(self, outcome: CommittedChanges) -> None:
        self.case_events.labels("applied").inc(outcome.applied)
        self.case_events.labels("duplicate").inc(outcome.duplicates)
        for clock in outcome.started:
            self.clocks_started.labels(**clock_labels(clock)).inc()
            self._precreate_clock(clock)
        for fulfilment in outcome.fulfilled:
            self.record_fulfilment(fulfilment)
        self.record_alerts(outcome.fired)
        for clock in outcome.retracted:
            self.retracted.labels(**clock_labels(clock)).inc()

    def set_attainment(self, counts: Mapping[tuple[str, str, str], int]) -> None:
        for (clock, policy, outcome), clocks in counts.items():
            self.attainment.labels(clock, policy, outcome).set(clocks)

    def set_watermark_delay(self, low: datetime | None, now: datetime) -> None:
        if low is None:
            self.watermark_delay.set(float("nan"))
        else:
            self.watermark_delay.set(max(0.0, (now - low).total_seconds()))

    def record_fulfilment(self, fulfilment: Fulfilment) -> None:
        labels = response_labels(fulfilment.clock)
        for time, seconds in response_times(fulfilment).items():
            self.response_seconds.labels(time=time, **labels).observe(seconds)
        if counts_for_agents(fulfilment):
            clock = fulfilment.clock
            self.agent_response_seconds.labels(
                clock.clock, clock.team or UNKNOWN, self.roster.agent(fulfilment.assignee)
            ).observe(response_times(fulfilment)["business"])
        met = "true" if fulfilment.within_target else "false"
        self.clocks_fulfilled.labels(**clock_labels(fulfilment.clock), within_target=met).inc()

    def set_open_clocks(self, counts: Mapping[str, int]) -> None:
        for clock in CLOCKS:
            self.open_clocks.labels(clock).set(counts.get(clock, 0))

    def set_time_to_breach(self, earliest_due: Mapping[str, datetime], now: datetime) -> None:
        """Seconds from `now` to each clock name's earliest due_at; removed when none runs."""
        for clock in CLOCKS:
            due = earliest_due.get(clock)
            if due is not None:
                self.time_to_breach.labels(clock).set((due - now).total_seconds())
                self._timed_clocks.add(clock)
            elif clock in self._timed_clocks:
                self.time_to_breach.remove(clock)
                self._timed_clocks.discard(clock)
