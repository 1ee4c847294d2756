"""`casewire-dev chaos`: the whole stack under a seeded workload and scheduled faults, every
output read back and checked by the oracle.

A run, in its folder (`.chaos/` under the repository unless told otherwise):
1. a fresh local stack (broker, and PostgreSQL unless a server URL is given), migrations, the
   run's config files (the repository's rules, small agent capacities, an always-open
   first-response policy), ingest, then router and sla with one or more replicas each;
2. the plan (`workload.py`) posted at its schedule through a bounded number of connections,
   every non-2xx retried with backoff as the platforms do, while `faults.py` injects faults
   and a care desk (`desk.py`) resolves answered cases through the router's API;
3. once the last deadline has passed: drained (the services' `casewire_consumer_lag` and
   `casewire_outbox_backlog` at 0, then the output topics and the router's message store
   quiet for a few seconds — the local broker's end offsets are not reliable);
4. `casewire-ingest replay --json` over the whole run, when ingest has it;
5. everything read back into a `Capture`, checked by `oracle.check`, the verdict table
   printed and `chaos/results.json` written; exit 1 on any violation.

Everything it started is stopped at the end, also on Ctrl-C or an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from casewire_common import topics
from casewire_common.events import ROUTER_WATERMARK
from casewire_router.domain.rules import load_rules
from prometheus_client.parser import text_string_to_metric_families

from casewire_dev import services, stack
from casewire_dev.bench_workload import agents_file
from casewire_dev.chaos import faults, verdict, workload
from casewire_dev.chaos.capture import Capture, Record, SentMessage, StoredMessage
from casewire_dev.chaos.desk import CareDesk
from casewire_dev.chaos.fleet import Fleet
from casewire_dev.identity import LocalIdentity
from casewire_dev.paths import repo_root, shared_data

ROUTER_GROUP = "casewire-router"  # the router's consumer group (its default setting)
SESSION_TIMEOUT_MS = 6000  # a killed consumer's partitions move after this
RETRY_FIRST_PAUSE_SECONDS = 0.25
RETRY_LONGEST_PAUSE_SECONDS = 4.0
GIVE_UP_AFTER_SECONDS = 300.0  # a platform retries for hours; a run has to end
PROGRESS_SECONDS = 60.0
FOLLOW_SECONDS = 1.0  # between two reads of the case events during the run
QUIET_SECONDS = 5.0  # outputs unchanged this long (with lag and backlog at 0): drained
DRAIN_TIMEOUT_SECONDS = 600.0
REPLAY_TIMEOUT_SECONDS = 600.0
LONG_TARGET = timedelta(hours=1)  # next_response and resolution: never due during a run

# Agents: small capacities over the rules' teams and the workload's four languages.
AGENTS = (
    ("amal", ("shipping", "care"), ("ar", "en"), 3),
    ("omar", ("incidents", "accounts"), ("ar", "en"), 2),
    ("nikos", ("care", "accounts"), ("el", "en"), 3),
    ("eleni", ("billing", "shipping"), ("el", "en"), 2),
    ("somchai", ("care", "billing"), ("th", "en"), 3),
    ("nok", ("incidents", "shipping"), ("th", "en"), 2),
    ("jake", ("incidents",), ("en",), 2),
    ("sam", ("care", "billing", "accounts"), ("en",), 4),
)


@dataclass(frozen=True)
class ChaosOptions:
    messages: int = 2000
    seed: int = 7
    faults: tuple[str, ...] = faults.FAULT_NAMES
    first_response_seconds: float = 20.0
    messages_per_second: float = 80.0
    replicas: int = 1  # of router and of sla
    connections: int = 16
    partitions: int = 6
    run_dir: Path | None = None  # default: <repo>/.chaos
    results: Path | None = None  # default: <repo>/chaos/results.json
    # An existing PostgreSQL server to use (a fresh database is created on it); the run
    # then cannot stop PostgreSQL and skips that fault.
    database_server_url: str | None = None


def agents_yaml() -> str:
    return agents_file(AGENTS)


def policies_yaml(first_response_seconds: float) -> str:
    """One contract for every case, always open: first-response due = opening + target."""
    long = int(LONG_TARGET.total_seconds())
    return (
        "version: 1\n"
        "calendars:\n"
        "  - {id: always, always_open: true}\n"
        "policies:\n"
        "  - id: chaos\n"
        "    match: {}\n"
        "    calendar: always\n"
        f"    first_response: {first_response_seconds:g}s\n"
        f"    next_response: {long}s\n"
        f"    resolution: {long}s\n"
    )


def run(options: ChaosOptions) -> int:
    """One chaos run; 0 when every check passed, 1 on a violation or a failed run."""
    return asyncio.run(_main(options))


async def _main(options: ChaosOptions) -> int:
    root = repo_root()
    chaos = ChaosRun(options, root)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, lambda: task.cancel() if task else None)
    try:
        return await chaos.main()
    except asyncio.CancelledError:
        print("\nchaos run interrupted", flush=True)
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


# --- Posting -------------------------------------------------------------------------------


@dataclass
class Posting:
    """What the poster did: accepted messages, inputs it gave up on, surprising answers."""

    sent: list[SentMessage] = field(default_factory=list)
    tries: int = 0
    retried_posts: int = 0
    undelivered: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    finished_at: float = 0.0


def _reason(response: httpx.Response) -> str:
    try:
        document = response.json()
    except ValueError:
        return ""
    return str(document.get("error", "")) if isinstance(document, dict) else ""


def _rejected_items(response: httpx.Response) -> list[Any]:
    try:
        document = response.json()
    except ValueError:
        return []
    rejected = document.get("rejected") if isinstance(document, dict) else None
    return rejected if isinstance(rejected, list) else []


class Poster:
    """Posts the plan at its schedule, at most `connections` requests at a time."""

    def __init__(self, ingest_url: str, connections: int, seed: int) -> None:
        self._client = httpx.AsyncClient(
            base_url=ingest_url,
            timeout=15.0,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._slots = asyncio.Semaphore(connections)
        self._jitter = random.Random(seed)
        self.result = Posting()

    async def close(self) -> None:
        await self._client.aclose()

    async def post_plan(self, plan: workload.Plan, started: float) -> Posting:
        loop = asyncio.get_running_loop()
        pending: set[asyncio.Task[None]] = set()
        progress = asyncio.create_task(self._report_progress(len(plan.messages), pending, started))
        try:
            for post in plan.posts:
                delay = started + post.at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(self._deliver(post))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.gather(*pending)
        finally:
            progress.cancel()
            for task in pending:
                task.cancel()
        self.result.finished_at = loop.time()
        return self.result

    async def _report_progress(
        self, planned: int, pending: set[asyncio.Task[None]], started: float
    ) -> None:
        """A line every PROGRESS_SECONDS: a long run should not look stuck."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            print(
                f"  {loop.time() - started:5.0f}s: {len(self.result.sent)} of {planned} messages"
                f" accepted, {len(pending)} posts in flight or retrying",
                flush=True,
            )

    async def _deliver(self, post: workload.PlannedPost) -> None:
        """One post until a 2xx (or, for a deliberately bad one, its refusal), retried with
        exponential backoff like a platform redelivering a webhook. The body is built at the
        first try, so its `sent_at` is when it was first sent. The post gives up after
        GIVE_UP_AFTER_SECONDS of trying: waiting for a free connection does not count (when
        the run falls behind its plan, thousands of posts queue for one; a retried post must
        not be given up for it: ingest's 503 during a broker stall then became 16
        undelivered posts in a 100,000-message run, whose messages ingest had published)."""
        loop = asyncio.get_running_loop()
        rendered: workload.Rendered | None = None
        give_up: float | None = None
        pause = RETRY_FIRST_PAUSE_SECONDS
        tries = 0
        last = ""
        while give_up is None or loop.time() < give_up:
            queued = loop.time()
            async with self._slots:
                if give_up is None:
                    give_up = loop.time() + GIVE_UP_AFTER_SECONDS
                else:
                    give_up += loop.time() - queued
                if rendered is None:
                    rendered = workload.render(post, datetime.now(UTC))
                tries += 1
                self.result.tries += 1
                try:
                    response = await self._client.post(
                        rendered.path, content=rendered.body, headers=rendered.headers
                    )
                except httpx.TransportError as error:
                    response, last = None, type(error).__name__
            if response is not None:
                if self._settled(post, rendered, response, tries):
                    return
                last = f"{response.status_code} {_reason(response)}"
            if tries == 1:
                self.result.retried_posts += 1
            await asyncio.sleep(pause * (0.5 + self._jitter.random()))
            pause = min(pause * 2, RETRY_LONGEST_PAUSE_SECONDS)
        self.result.undelivered.append(f"{post.endpoint}@{post.at:.1f}s: {last}")

    def _settled(
        self,
        post: workload.PlannedPost,
        rendered: workload.Rendered,
        response: httpx.Response,
        tries: int,
    ) -> bool:
        """Record a final answer; False when the post must be tried again."""
        status = response.status_code
        expected = post.expected_rejection
        if 200 <= status < 300:
            rejected = _rejected_items(response)
            if bool(rejected) != (expected == "invalid_item"):
                self.result.unexpected.append(f"{rendered.path}: {status} rejected={rejected}")
            accepted_at = datetime.now(UTC)
            self.result.sent.extend(workload.iter_sent(post, rendered, accepted_at, tries))
            return True
        if expected is not None and 400 <= status < 500 and status not in (408, 429):
            if _reason(response) != expected:
                self.result.unexpected.append(
                    f"{rendered.path}: {status} {_reason(response)}, expected {expected}"
                )
            return True
        return False


# --- Reading back ----------------------------------------------------------------------------


_WATERMARK = ROUTER_WATERMARK.encode()


def _message_id(record: ConsumerRecord[bytes, bytes]) -> str:
    """A canonical message's id; an unreadable record is named by its place (never a known id)."""
    try:
        return str(json.loads(record.value)["id"])
    except (ValueError, TypeError, KeyError):
        return f"unreadable {record.topic}/{record.partition}/{record.offset}"


class TopicReader:
    """Every record of the output topics and dead-letter topics from the beginning, kept;
    of the messages topic, only how many records and which message ids."""

    KEPT = (topics.CASE_EVENTS, topics.SLA_ALERTS, *(topics.dlq(topic) for topic in topics.ALL))

    def __init__(self, bootstrap: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20
        )
        self.records: dict[str, list[Record]] = {topic: [] for topic in self.KEPT}
        self.messages = 0
        self.message_ids: set[str] = set()

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in (*self.KEPT, topics.MESSAGES)
            for partition in sorted(self._consumer.partitions_for_topic(topic) or ())
        ]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)

    async def stop(self) -> None:
        await self._consumer.stop()

    def only(self, topic: str) -> None:
        """Read `topic` alone until `everything()`: fetching every growing topic again and
        again keeps the local broker busy (it served the services at a fifth of the rate)."""
        assigned = self._consumer.assignment()
        self._consumer.pause(*(partition for partition in assigned if partition.topic != topic))

    def everything(self) -> None:
        self._consumer.resume(*self._consumer.assignment())

    async def poll(self) -> int:
        """Read what is there now; how many records were new. The router's watermarks keep
        coming while it runs: they are kept (the oracle reads them) but never count as new."""
        batch = await self._consumer.getmany(timeout_ms=500, max_records=20_000)
        new = 0
        for partition, received in batch.items():
            if partition.topic == topics.MESSAGES:
                new += len(received)
                self.messages += len(received)
                self.message_ids.update(_message_id(record) for record in received)
                continue
            new += sum(("ce_type", _WATERMARK) not in r.headers for r in received)
            self.records[partition.topic].extend(
                Record(
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key.decode(errors="replace") if record.key is not None else None,
                    headers=dict(record.headers),
                    value=record.value or b"",
                    timestamp=datetime.fromtimestamp(record.timestamp / 1000, tz=UTC),
                )
                for record in received
            )
        return new

    async def until_quiet(self, seconds: float) -> None:
        """Read until nothing new came for `seconds`."""
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        while loop.time() - quiet_since < seconds:
            if await self.poll():
                quiet_since = loop.time()

    @property
    def dead_letters(self) -> list[Record]:
        return [
            record
            for topic in self.KEPT
            if topic.endswith(".dlq")
            for record in self.records[topic]
        ]


def gauge_sum(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


# --- The run ---------------------------------------------------------------------------------


class ChaosRun:
    def __init__(self, options: ChaosOptions, root: Path) -> None:
        self.options = options
        self.root = root
        self.run_dir = options.run_dir or root / ".chaos"
        self.state_dir = self.run_dir / "stack"
        self.log_dir = self.run_dir / "logs"
        self.config_dir = self.run_dir / "config"
        self.results_path = options.results or root / verdict.RESULTS
        self.fleet: Fleet | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.started_stack = False
        self.verdicts: list[verdict.Verdict] = []
        # A signing key new every run; the care desk resolves cases as a lead of every team.
        self.identity = LocalIdentity(self.config_dir / "identity" / "jwks.json")

    async def main(self) -> int:
        try:
            self.verdicts = verdicts = await self._run()
        except (
            RuntimeError,
            OSError,
            subprocess.SubprocessError,
            asyncpg.PostgresError,
            KafkaError,
        ) as error:
            print(f"\nchaos run failed: {error}", flush=True)
            return 1
        finally:
            await self._shutdown()
        print()
        print(verdict.format_table(verdicts))
        verdict.write_results(verdicts, self.results_path)
        print(f"\nwritten: {self.results_path}")
        return 0 if verdict.passed(verdicts) else 1

    def _say(self, text: str) -> None:
        print(text, flush=True)

    async def _run(self) -> list[verdict.Verdict]:
        options = self.options
        clock_started = time.monotonic()
        faults.schedule(options.faults, 1.0)  # refuse unknown names before starting anything
        texts = await asyncio.to_thread(workload.read_texts, shared_data(self.root), self.root)
        plan = workload.build_plan(
            workload.PlanOptions(
                messages=options.messages,
                seed=options.seed,
                first_response_seconds=options.first_response_seconds,
                messages_per_second=options.messages_per_second,
            ),
            texts,
        )
        self._say(
            f"plan: {len(plan.messages)} messages in {len(plan.posts)} posts over"
            f" {plan.posts[-1].at:.0f}s (seed {options.seed});"
            f" faults: {', '.join(options.faults) or 'none'}"
        )
        running_stack, env = await self._start_stack()
        fleet = await self._start_services(env)
        timings: dict[str, float] = {"startup_s": time.monotonic() - clock_started}

        bootstrap = running_stack.kafka_bootstrap_servers
        sampler = faults.OffsetSampler(bootstrap, ROUTER_GROUP)
        self._spawn(sampler.run())
        fault_run = faults.FaultRun(
            fleet,
            running_stack,
            options.first_response_seconds,
            extra_router_port=stack.free_port(),
            sampler=sampler,
        )
        reader = TopicReader(bootstrap)
        await reader.start()
        desk_token = self.identity.token(
            "chaos-desk", ["lead"], teams=load_rules(str(self.root / workload.RULES_FILE)).teams
        )
        desk = CareDesk(fleet, desk_token, options.seed)
        loop = asyncio.get_running_loop()
        started = loop.time()
        following = asyncio.gather(desk.run(), self._follow(reader, desk))
        try:
            poster = Poster(fleet.of("ingest")[0].url, options.connections, options.seed)
            try:
                schedule = faults.schedule(options.faults, plan.posts[-1].at)
                posting, _ = await asyncio.gather(
                    poster.post_plan(plan, started), fault_run.run_schedule(schedule, started)
                )
            finally:
                await poster.close()
            timings["posting_s"] = posting.finished_at - started
            self._say(
                f"posted: {len(posting.sent)} messages accepted, {posting.tries} requests,"
                f" {posting.retried_posts} posts retried, {len(posting.undelivered)} undelivered"
            )
            await self._wait_for_deadlines(posting.sent)
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            self._say(
                f"care desk: {desk.resolved} cases resolved, {desk.refused} refused"
                f" {dict(desk.refusals)}, {len(desk.failed)} failed, {desk.unfinished} unfinished"
            )
            drain_started = loop.time()
            await self._drain(fleet, reader, env["CASEWIRE_DATABASE_URL"])
            timings["drain_s"] = loop.time() - drain_started
            messages_before = reader.messages
            ids_before = frozenset(reader.message_ids)
            replay = await self._replay(env)
            if replay is not None:
                await reader.until_quiet(QUIET_SECONDS)
            fault_run.measure()
            capture = Capture(
                seed=options.seed,
                sent=posting.sent,
                case_events=reader.records[topics.CASE_EVENTS],
                sla_alerts=reader.records[topics.SLA_ALERTS],
                dead_letters=reader.dead_letters,
                stored_messages=await stored_messages(env["CASEWIRE_DATABASE_URL"]),
                agent_capacity={agent: capacity for agent, _, _, capacity in AGENTS},
                sla_policies=self.config_dir / "sla-policies.yaml",
                sla_metrics=await fleet.metrics(fleet.of("sla")[0]) or "",
                faults=fault_run.faults,
                replay=replay,
                messages_before_replay=messages_before,
                messages_after_replay=reader.messages,
                message_ids_before_replay=ids_before,
                message_ids_after_replay=frozenset(reader.message_ids),
                timings={**timings, **fault_run.timings},
                expected_rejections=plan.expected_rejections(),
            )
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
            await reader.stop()
        capture.timings["run_s"] = time.monotonic() - clock_started
        # For a look at a failed check without running again (`pickle.load`).
        (self.run_dir / "capture.pickle").write_bytes(pickle.dumps(capture))
        for skipped in fault_run.skipped:
            self._say(f"skipped fault: {skipped}")
        return [*check(capture), *posting_verdicts(posting), *desk_verdicts(desk)]

    async def _follow(self, reader: TopicReader, desk: CareDesk) -> None:
        """Read the case events as they come, so that the desk sees cases being answered."""
        reader.only(topics.CASE_EVENTS)
        try:
            while True:
                await reader.poll()
                desk.see(reader.records[topics.CASE_EVENTS])
                await asyncio.sleep(FOLLOW_SECONDS)
        finally:
            reader.everything()

    async def _start_stack(self) -> tuple[stack.Stack, dict[str, str]]:
        """A fresh stack in the run folder (the broker keeps nothing across runs, so neither
        may PostgreSQL); its connection settings for the services."""
        for folder in (self.log_dir, self.config_dir):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        self.identity.publish()  # its JWKS file was in the folder just emptied
        await asyncio.to_thread(stack.down, self.state_dir, remove=True)
        self._say(f"local stack: starting in {self.state_dir}")
        self.started_stack = True
        running = await asyncio.to_thread(
            stack.up,
            self.state_dir,
            kafka_port=stack.free_port(),
            postgres_port=stack.free_port(),
            database_url=self.options.database_server_url,
            partitions=self.options.partitions,
        )
        database_url = running.database_url
        if self.options.database_server_url is not None:
            database_url = await stack.ensure_database(
                self.options.database_server_url, f"casewire_chaos_{os.urandom(6).hex()}"
            )
        env = {
            **os.environ,
            **running.env(),
            "CASEWIRE_DATABASE_URL": database_url,
            "CASEWIRE_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        }
        return running, env

    async def _start_services(self, env: dict[str, str]) -> Fleet:
        (self.config_dir / "agents.yaml").write_text(agents_yaml(), "utf-8")
        (self.config_dir / "sla-policies.yaml").write_text(
            policies_yaml(self.options.first_response_seconds), "utf-8"
        )
        # Each service migrates its own schema: the three can run at once.
        await asyncio.gather(
            *(
                services.migrate(service, env, self.log_dir)
                for service in ("ingest", "router", "sla")
            )
        )
        fleet = Fleet(env, self.log_dir)
        self.fleet = fleet
        fleet.add("ingest", stack.free_port(), workload.ingest_settings())
        router_settings = {
            "CASEWIRE_ROUTER_RULES": str(self.root / workload.RULES_FILE),
            "CASEWIRE_ROUTER_SAVED_REPLIES": str(self.root / workload.SAVED_REPLIES_FILE),
            "CASEWIRE_ROUTER_AGENTS": str(self.config_dir / "agents.yaml"),
            **self.identity.router_env(),
        }
        sla_settings = {"CASEWIRE_SLA_POLICIES": str(self.config_dir / "sla-policies.yaml")}
        for _ in range(self.options.replicas):
            fleet.add("router", stack.free_port(), router_settings)
            fleet.add("sla", stack.free_port(), sla_settings)
        for replica in fleet.replicas:
            fleet.start(replica)
        await asyncio.gather(*(fleet.wait_ready(replica) for replica in fleet.replicas))
        self._say("ready: " + ", ".join(f"{r.name} {r.url}" for r in fleet.replicas))
        return fleet

    async def _wait_for_deadlines(self, sent: Sequence[SentMessage]) -> None:
        """Until the last first-response deadline of the run has passed (with a margin): a
        thread's clock starts at its first customer message."""
        openings: dict[str, datetime] = {}
        for message in sent:
            if message.direction == "inbound" and message.needs_case:
                openings[message.thread] = min(
                    message.sent_at, openings.get(message.thread, message.sent_at)
                )
        if not openings:
            return
        target = timedelta(seconds=self.options.first_response_seconds + 2)
        last_due = max(openings.values()) + target
        wait = (last_due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            self._say(f"waiting {wait:.0f}s for the last first-response deadline")
            await asyncio.sleep(wait)

    async def _drain(self, fleet: Fleet, reader: TopicReader, database_url: str) -> None:
        """Lag and outbox backlog 0 on every consuming replica, then the outputs quiet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT_SECONDS
        consumers = [r for r in fleet.replicas if r.service != "ingest" and r.running]
        while True:
            texts = await asyncio.gather(*(fleet.metrics(replica) for replica in consumers))
            backlog = [
                gauge_sum(text, "casewire_consumer_lag")
                + gauge_sum(text, "casewire_outbox_backlog")
                if text is not None
                else float("inf")
                for text in texts
            ]
            await reader.poll()
            if sum(backlog) == 0:
                break
            if loop.time() > deadline:
                raise RuntimeError(f"not drained after {DRAIN_TIMEOUT_SECONDS:.0f}s: {backlog}")
            await asyncio.sleep(1.0)
        stored = -1
        quiet_since = loop.time()
        while loop.time() - quiet_since < QUIET_SECONDS:
            new = await reader.poll()
            count = await stored_message_count(database_url)
            if new or count != stored:
                stored, quiet_since = count, loop.time()
            if loop.time() > deadline:
                raise RuntimeError(f"outputs still growing after {DRAIN_TIMEOUT_SECONDS:.0f}s")
        self._say(
            f"drained: {reader.messages} messages, {len(reader.records[topics.CASE_EVENTS])} case"
            f" events, {len(reader.records[topics.SLA_ALERTS])} SLA alerts,"
            f" {len(reader.dead_letters)} dead letters, {stored} stored messages"
        )

    async def _replay(self, env: dict[str, str]) -> dict[str, Any] | None:
        """`casewire-ingest replay --json` over the whole raw topic; None when this ingest
        has no replay yet."""
        process = await asyncio.create_subprocess_exec(
            services.console_script("casewire-ingest"),
            "replay",
            "--json",
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), REPLAY_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            return {"error": f"no answer within {REPLAY_TIMEOUT_SECONDS:.0f}s", "exit_code": None}
        if process.returncode == 2 and b"invalid choice" in err:
            self._say("replay: casewire-ingest has no replay subcommand yet (not run)")
            return None
        try:
            summary = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            summary = {"error": err.decode(errors="replace")[-500:]}
        summary["exit_code"] = process.returncode
        self._say(f"replay: {json.dumps(summary)[:300]}")
        return summary if isinstance(summary, dict) else {"summary": summary}

    def _spawn(self, work: Any) -> None:
        self.tasks.append(asyncio.create_task(work))

    async def _shutdown(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.fleet is not None:
            await self.fleet.stop_all()
        if self.started_stack:
            await asyncio.to_thread(stack.down, self.state_dir)
        self._say(f"stopped everything the run started (logs in {self.log_dir})")


async def stored_messages(database_url: str) -> list[StoredMessage]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT id, case_id, direction, sent_at FROM router.messages")
    finally:
        await connection.close()
    return [
        StoredMessage(
            message_id=str(row["id"]),
            case_id=None if row["case_id"] is None else str(row["case_id"]),
            direction=row["direction"],
            sent_at=row["sent_at"],
        )
        for row in rows
    ]


async def stored_message_count(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM router.messages"))
    finally:
        await connection.close()


def desk_verdicts(desk: CareDesk) -> list[verdict.Verdict]:
    """The desk's resolutions are reported; a refusal of who it is (401, 403) fails the run:
    the routers must trust the run's identity provider, or no case is ever resolved."""
    refused_callers = {
        refusal: count
        for refusal, count in desk.refusals.items()
        if refusal.startswith(("401", "403"))
    }
    return [
        verdict.Verdict("desk_resolutions", desk.resolved, "cases", None),
        verdict.Verdict(
            "desk_caller_refusals",
            sum(refused_callers.values()),
            "requests",
            not refused_callers,
            ", ".join(f"{refusal} ×{count}" for refusal, count in refused_callers.items()),
        ),
        verdict.Verdict("desk_unfinished_resolutions", desk.unfinished, "cases", None),
        verdict.Verdict(
            "desk_failed_resolutions", len(desk.failed), "cases", None, "; ".join(desk.failed[:3])
        ),
    ]


def check(capture: Capture) -> list[verdict.Verdict]:
    """The oracle's rows (the module is written beside this one)."""
    from casewire_dev.chaos import oracle

    return oracle.check(capture)


def posting_verdicts(posting: Posting) -> list[verdict.Verdict]:
    """What the runner itself can tell: inputs never accepted, and answers it did not expect
    (a bad input let through, or a good one refused in part)."""
    return [
        verdict.Verdict(
            "undelivered_posts",
            len(posting.undelivered),
            "posts",
            not posting.undelivered,
            "; ".join(posting.undelivered[:3]),
        ),
        verdict.Verdict(
            "unexpected_answers",
            len(posting.unexpected),
            "posts",
            not posting.unexpected,
            "; ".join(posting.unexpected[:3]),
        ),
        verdict.Verdict("post_requests", posting.tries, "requests", None),
        verdict.Verdict("retried_posts", posting.retried_posts, "posts", None),
    ]
