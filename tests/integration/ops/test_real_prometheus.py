"""The dashboards and alert rules against a real Prometheus scraping the running services.

Static checks (catalog, promtool rule tests) cannot see what Prometheus does to real series: a
metric label named like a target label is overwritten by the target's (ours becomes
`exported_<name>`), and a counter series born at its first event hides that event from
`rate()` and `increase()`. Here the three services run as processes (`casewire-<svc> serve`)
on the real broker and PostgreSQL; Prometheus (Debian's package, unpacked by `make tools`)
scrapes them every second with the target labels the PodMonitor gives (job, namespace, pod,
container, endpoint, instance - and service, as a ServiceMonitor would) and evaluates the
PrometheusRule's groups every second. Traffic: accepted messages, a redelivered one, a refused
body, a record on casewire.messages.v1 the router dead-letters, a case answered in time and one
whose SLA warning fires late (its message was sent before the clock could start) and whose
breach follows. Then every panel query of every dashboard goes through /api/v1/query (template
variables substituted, `$__rate_interval` and `$__range` by a window covering the whole test):
the panels this traffic fills must show it - a finite value, and above 0 for rate()/increase()
panels - except those listed in NOT_FILLED with the reason. Alerts are read from Prometheus's
own rule evaluation (/api/v1/alerts; the alerts expected here have no `for:`), and every alert
expression is also queried directly: those in FIRING must return series, the others none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from casewire_common import topics
from casewire_dev import services
from casewire_dev import stack as local_stack

from tests.integration.helpers import SESSION_TIMEOUT_MS, TEST_INTEGRATION, producer
from tests.unit.ops.promtool import alert_rules, prometheus_tool, write_rule_file

pytestmark = pytest.mark.integration

DASHBOARDS = Path(__file__).resolve().parents[3] / "deploy/components/monitoring/dashboards"
# Covers the whole test, so a panel shows every event of it (and the 0 samples before them).
WINDOW = "5m"
NAMESPACE = "casewire"

RULES = """
version: 1
default_team: care
teams: [care, fastlane]
rules:
  - id: fastlane
    when: {any: ["hurry"]}
    then: {team: fastlane, tags: [rush]}
"""
AGENTS = """
agents:
  - {id: nikos, teams: [care, fastlane], languages: [en], capacity: 1000, online: true}
"""
# fastlane warns at 3 s and breaches at 12 s from the message's sent_at; care has an hour.
POLICIES = """
version: 1
calendars: [{id: always, always_open: true}]
policies:
  - {id: fast, match: {team: [fastlane]}, calendar: always, first_response: 12s, warn_at: [0.25]}
  - {id: standard, match: {}, calendar: always, first_response: 1h, resolution: 1h}
"""

# (dashboard file, panel title) -> why this test's traffic leaves it without data.
NOT_FILLED = {
    ("casewire-care.json", "Incidents and escalations"): "no crisis burst, no escalation rules",
    ("casewire-care.json", "Trending topics (cases in the trend window / baseline)"): (
        "a trend needs at least 5 cases of one tag in the window"
    ),
    # Every case is assigned at once: no queue, and the queue gauges have series only for the
    # (team, priority) pairs with cases waiting.
    ("casewire-care.json", "Queue depth by team"): "every case is assigned at once",
    ("casewire-care.json", "Queue depth by priority"): "every case is assigned at once",
    ("casewire-care.json", "Longest wait in queue by team"): "every case is assigned at once",
    ("casewire-pipeline.json", "Handler errors by exception"): "no handler raises",
    ("casewire-pipeline.json", "Rules and saved-replies reloads, failed reloads"): (
        "neither file changes"
    ),
    ("casewire-care.json", "Most used saved replies in the time range"): (
        "no reply goes through the case API"
    ),
    ("casewire-care.json", "Collisions by team (two people answering one case)"): (
        "nobody takes a reply lease or replies through the case API"
    ),
    ("casewire-sla.json", "Next response time p90 by priority"): "no next_response clock",
    ("casewire-sla.json", "Next response time p50, p90, p99"): "no next_response clock",
    ("casewire-sla.json", "Resolution time p90 by priority"): "no case is resolved",
    ("casewire-sla.json", "Resolution time p50, p90, p99"): "no case is resolved",
    ("casewire-sla.json", "Retracted and provisional breaches"): "no retraction, no max_hold",
    # casewire_sla_clocks_started_total is not pre-created (a clock's team comes with its
    # case), so each team's first clock is not seen by rate(): 0/0 and x/0.
    ("casewire-sla.json", "Breach rate by team"): "each team's first clock is its only one",
}
# Panels this traffic may or may not fill, by timing alone: the only warning is due before its
# message is read; fired in the batch that starts its clock, its series is born with it (no
# increase to show), fired by the timer scheduler a moment later, it starts at 0 (shown). A
# per-team series can start at 0 only when a clock starts: the SLA service keeps no team list.
MAY_FILL = {
    ("casewire-sla.json", "Warnings by team"): "the late warning fires with or after its clock",
}
# The alerts this traffic must fire; every other alert expression must return nothing.
FIRING = {"CasewireDeadLetters"}


@dataclass(frozen=True)
class Panel:
    dashboard: str
    title: str
    queries: tuple[str, ...]


def panels() -> list[Panel]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text("utf-8"))
        variables = [v["name"] for v in dashboard.get("templating", {}).get("list", [])]
        for panel in walk(dashboard["panels"]):
            queries = tuple(
                substitute(target["expr"], variables)
                for target in panel.get("targets", [])
                if target.get("expr")
            )
            if queries:
                found.append(Panel(path.name, panel["title"], queries))
    return found


def walk(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from walk(panel.get("panels", []))


def substitute(expr: str, variables: list[str]) -> str:
    """Grafana's variables: the time ranges by WINDOW, every template variable by "all"."""
    expr = expr.replace("$__rate_interval", WINDOW).replace("$__range", WINDOW)
    for name in variables:
        expr = re.sub(rf"\$\{{{name}\}}|\${name}\b", ".*", expr)
    assert "$" not in expr, f"a variable left in {expr}"
    return expr


def scrape_config(ports: dict[str, int]) -> dict[str, Any]:
    """One job per service, named and labelled as the PodMonitor's targets are."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": ["casewire-rules.yaml"],
        "scrape_configs": [
            {
                "job_name": f"casewire-{name}",
                "metrics_path": "/metrics",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{port}"],
                        "labels": {
                            "namespace": NAMESPACE,
                            "pod": f"casewire-{name}-0",
                            "container": name,
                            "endpoint": "http",
                            "service": f"casewire-{name}",
                        },
                    }
                ],
            }
            for name, port in ports.items()
        ],
    }


class Prometheus:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def query(self, expr: str) -> list[dict[str, Any]]:
        answer = await self._http.get("/api/v1/query", params={"query": expr})
        body = answer.json()
        assert answer.status_code == 200, (expr, body)
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def get(self, path: str) -> Any:
        answer = await self._http.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]

    async def until(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Wait until `expr` returns series."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := await self.query(expr)):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{expr} returned nothing within {timeout}s")
            await asyncio.sleep(0.5)
        return result


def value(series: dict[str, Any]) -> float:
    return float(series["value"][1])


@contextlib.asynccontextmanager
async def running_prometheus(directory: Path, ports: dict[str, int]) -> AsyncIterator[Prometheus]:
    write_rule_file(directory)
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(ports), sort_keys=False), "utf-8")
    port = local_stack.free_port()
    log_path = directory / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: ASYNC220 - runs beside the test, never waited on here
            [
                prometheus_tool("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            cwd=directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(60):
                assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/-/ready")).status_code == 200:
                        break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"prometheus not ready; see {log_path}")
            yield Prometheus(http)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def running_services(
    directory: Path, bootstrap: str, database_url: str, unique: str
) -> AsyncIterator[dict[str, int]]:
    for name, text in (("rules", RULES), ("agents", AGENTS), ("policies", POLICIES)):
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    env = {
        **os.environ,
        "CASEWIRE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CASEWIRE_DATABASE_URL": database_url,
        "CASEWIRE_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "CASEWIRE_INTEGRATIONS": TEST_INTEGRATION.settings(),
        "CASEWIRE_LOG_LEVEL": "WARNING",
    }
    logs = directory / "logs"
    logs.mkdir()
    # Each service migrates its own schema: the three can run at once.
    await asyncio.gather(
        *(services.migrate(name, env, logs) for name in ("ingest", "router", "sla"))
    )
    # Only this test's records: other tests' messages would fill the metrics first.
    groups = {"router": f"prom-router-{unique}", "sla": f"prom-sla-{unique}"}
    for group, topic in (
        (groups["router"], topics.MESSAGES),
        (f"{groups['router']}-escalation", topics.SLA_ALERTS),
        (groups["sla"], topics.CASE_EVENTS),
    ):
        await local_stack.start_group_at_topic_end(bootstrap, group, topic)
    specs = [
        services.ServiceSpec("ingest", local_stack.free_port()),
        services.ServiceSpec(
            "router",
            local_stack.free_port(),
            {
                "CASEWIRE_ROUTER_RULES": str(directory / "rules.yaml"),
                "CASEWIRE_ROUTER_AGENTS": str(directory / "agents.yaml"),
                "CASEWIRE_ROUTER_CONSUMER_GROUP": groups["router"],
            },
        ),
        services.ServiceSpec(
            "sla",
            local_stack.free_port(),
            {
                "CASEWIRE_SLA_POLICIES": str(directory / "policies.yaml"),
                # The roster: the agents' business-time series start at 0 (the leaderboard).
                "CASEWIRE_SLA_AGENTS": str(directory / "agents.yaml"),
                "CASEWIRE_SLA_CONSUMER_GROUP": groups["sla"],
            },
        ),
    ]
    started = [services.start(spec, env, logs) for spec in specs]
    try:
        stop = asyncio.Event()
        for service in started:
            assert await services.wait_ready(service, stop, timeout=60)
        yield {spec.name: spec.port for spec in specs}
    finally:
        killed = await services.stop_all(started)
        assert killed == [], f"did not stop on SIGTERM: {killed}"


def message(
    unique: str, number: int, conversation: str, text: str, *, sent_ago: float = 0, **fields: str
) -> dict[str, object]:
    sent = datetime.now(UTC) - timedelta(seconds=sent_ago)
    direction = fields.get("direction", "inbound")
    return {
        "platform": "x",
        "channel": "dm",
        "direction": direction,
        "account_id": "brand",
        "platform_message_id": f"{unique}-{number}",
        "conversation_id": f"x:brand:{conversation}-{unique}",
        "author": {"id": "brand" if direction == "outbound" else "customer"},
        "text": text,
        "sent_at": sent.isoformat(),
    }


async def settle(scrapes: int = 3) -> None:
    """Let Prometheus scrape every target a few more times (every second)."""
    await asyncio.sleep(scrapes + 0.5)


async def test_every_panel_the_traffic_fills_shows_it_and_the_alerts_it_should_fire_fire(
    tmp_path: Path, kafka_bootstrap: str, database_url: str, unique: str
) -> None:
    async with (
        running_services(tmp_path, kafka_bootstrap, database_url, unique) as ports,
        running_prometheus(tmp_path, ports) as prometheus,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{ports['ingest']}", timeout=10, auth=TEST_INTEGRATION
        ) as ingest,
        producer(kafka_bootstrap) as kafka,
    ):
        up = await prometheus.until('count(up{job=~"casewire-.*"} == 1) == 3')
        assert up
        await settle()  # the pre-created series have 0 samples before any event

        async def post(body: dict[str, object] | bytes, status: int) -> None:
            if isinstance(body, bytes):
                answer = await ingest.post("/v1/messages", content=body)
            else:
                answer = await ingest.post("/v1/messages", json=body)
            assert answer.status_code == status, answer.text

        # Negative (the sentiment panels): "terrible" is in the negative vocabulary.
        answered = message(unique, 1, "answered", "This is terrible, where is my order?")
        await post(answered, 202)
        await post(answered, 202)  # a platform redelivery: a duplicate
        # Sent 8 s ago: its warning (at 3 s) fires late, as its clock starts; its breach (at
        # 12 s) fires on time, seconds after the clock started.
        await post(message(unique, 2, "late", "hurry please", sent_ago=8), 202)
        await post(b"{not json", 400)
        await kafka.send_and_wait(topics.MESSAGES, b"not a message", key=unique.encode())

        await prometheus.until('casewire_sla_clocks_started_total{team="care"}')
        await settle()  # the care clock's fulfilment series start at 0 first
        await post(
            message(unique, 3, "answered", "on its way!", direction="outbound", sent_ago=-1), 202
        )
        for expr in (
            "casewire_sla_late_alerts_total > 0",
            'casewire_sla_breaches_total{team="fastlane"} > 0',
            "casewire_sla_clocks_fulfilled_total > 0",
            "casewire_dead_letters_total > 0",
        ):
            await prometheus.until(expr)
        await settle()

        # No label collision: refusals keep their source beside the target's endpoint, and no
        # series of ours carries an `exported_<target label>`.
        refusals = await prometheus.query(
            'casewire_ingest_rejections_total{source="generic", reason="malformed_json"} > 0'
        )
        assert [s["metric"]["endpoint"] for s in refusals] == ["http"]
        for label in ("job", "instance", "namespace", "pod", "container", "service", "endpoint"):
            collided = await prometheus.query(
                f'{{__name__=~"casewire_.+|faststream_.+", exported_{label}!=""}}'
            )
            assert not collided, sorted({s["metric"]["__name__"] for s in collided})

        await check_panels(prometheus.query)
        await check_alerts(prometheus)


async def check_panels(query: Callable[[str], Awaitable[list[dict[str, Any]]]]) -> None:
    empty, unexpectedly_filled = [], []
    for panel in panels():
        results = [await query(expr) for expr in panel.queries]
        filled = any(
            filled_by(expr, series)
            for expr, result in zip(panel.queries, results, strict=True)
            for series in result
        )
        key = (panel.dashboard, panel.title)
        if key in MAY_FILL:
            continue
        if key in NOT_FILLED:
            if filled:
                unexpectedly_filled.append(f"{panel.dashboard} {panel.title!r}")
        elif not filled:
            empty.append(
                f"{panel.dashboard} {panel.title!r}: {' ; '.join(panel.queries)} -> {results}"
            )
    assert not empty, "panels this traffic should fill show nothing:\n  " + "\n  ".join(empty)
    assert not unexpectedly_filled, (
        f"filled, though listed in NOT_FILLED (remove them): {unexpectedly_filled}"
    )
    listed = {(p.dashboard, p.title) for p in panels()}
    assert {*NOT_FILLED, *MAY_FILL} <= listed, sorted({*NOT_FILLED, *MAY_FILL} - listed)


def filled_by(expr: str, series: dict[str, Any]) -> bool:
    """A finite value; above 0 when the query counts events (rate, increase)."""
    number = value(series)
    if not math.isfinite(number):
        return False
    return number > 0 if re.search(r"\b(rate|increase)\(", expr) else True


async def check_alerts(prometheus: Prometheus) -> None:
    groups = (await prometheus.get("/api/v1/rules"))["groups"]
    unhealthy = [
        f"{rule['name']}: {rule.get('lastError')}"
        for group in groups
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not unhealthy, unhealthy
    assert {rule["name"] for group in groups for rule in group["rules"]} == {
        rule["alert"] for rule in alert_rules()
    }
    firing = {
        alert["labels"]["alertname"]
        for alert in (await prometheus.get("/api/v1/alerts"))["alerts"]
        if alert["state"] == "firing"
    }
    assert firing >= FIRING, f"not firing: {sorted(FIRING - firing)}"
    dead_letters = next(r["expr"] for r in alert_rules() if r["alert"] == "CasewireDeadLetters")
    fired = {
        (s["metric"]["component"], s["metric"]["reason"])
        for s in await prometheus.query(dead_letters)
    }
    assert ("router", "invalid_message") in fired
    quiet = {
        rule["alert"]: result
        for rule in alert_rules()
        if rule["alert"] not in FIRING and (result := await prometheus.query(rule["expr"]))
    }
    assert not quiet, f"alerts this traffic should not fire return series: {quiet}"
