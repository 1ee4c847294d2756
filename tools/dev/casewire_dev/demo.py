"""`make run`: the local stack, the three services, a corpus replay, a care desk resolving
the replayed conversations' cases through the router's API, and a live summary.

One command, and Ctrl-C (or SIGTERM) stops all of it: the replay, the summary, the services
(SIGTERM, then SIGKILL after a timeout) and the stack, unless the stack was already running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from casewire_router.domain.rules import load_rules

from casewire_dev import corpus, services, stack
from casewire_dev.care_desk import DeskProgress, plan_resolutions, router_client, run_care_desk
from casewire_dev.identity import LocalIdentity
from casewire_dev.paths import repo_root, shared_data
from casewire_dev.replay import ReplayProgress, ScheduledMessage, replay, schedule
from casewire_dev.summary import DemoSummary, follow, show
from casewire_dev.webhooks import IntegrationAuth

INGEST_PORT, ROUTER_PORT, SLA_PORT = 8081, 8082, 8083
# A database of its own, recreated by every demo: the broker starts empty, so PostgreSQL must
# too, or the router would take the replayed messages for ones it has already processed.
DEMO_DATABASE = "casewire_demo"
DEMO_INTEGRATION = "demo-replay"
DESK_ID = "care-desk"  # the lead the demo's care desk acts as


class DemoError(RuntimeError):
    """The demo cannot start or keep running; the message says why and where to look."""


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 60.0
    conversations: int | None = None
    arrival_seconds: float = 0.5
    use_stack: bool = True
    duration: float | None = None  # seconds; None runs until Ctrl-C


def run(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C, SIGTERM or `options.duration`; 0 unless something failed."""
    try:
        root = repo_root()
    except RuntimeError as error:
        _say(f"demo failed: {error}")
        return 1
    return asyncio.run(Demo(options, root).main())


def _say(text: str) -> None:
    print(text, flush=True)


class Demo:
    """One demo run: what it started, so that it can stop exactly that."""

    def __init__(self, options: DemoOptions, root: Path) -> None:
        self.options = options
        self.root = root
        self.state_dir = self.root / ".stack"
        self.log_dir = self.state_dir / "logs"
        self.stop = asyncio.Event()
        self.started_stack = False
        self.running: list[services.RunningService] = []
        self.tasks: list[asyncio.Task[None]] = []
        # The local identity provider: a signing key new for every run, trusted by the router;
        # the care desk acts as a lead of every team with a token it signs.
        self.identity = LocalIdentity(self.state_dir / "identity" / "jwks.json")
        # The replay posts on the generic channel as an integration, with a key minted per run.
        self.integration = IntegrationAuth(DEMO_INTEGRATION, secrets.token_urlsafe(32))

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop.set)
        try:
            await self._run()
            return 0
        except (RuntimeError, OSError, subprocess.SubprocessError, asyncpg.PostgresError) as error:
            # DemoError, ServiceError and the stack's RuntimeErrors say what to do next.
            _say(f"\ndemo failed: {error}")
            return 1
        finally:
            await self._shutdown()

    async def _run(self) -> None:
        options = self.options
        corpus_dir = shared_data(self.root) / "corpus"
        conversations = corpus.load_corpus(corpus_dir)[: options.conversations]
        plan = schedule(conversations, speed=options.speed, arrival_seconds=options.arrival_seconds)
        config = self._config_files()
        for port in (INGEST_PORT, ROUTER_PORT, SLA_PORT):
            if stack.port_open(port):
                raise DemoError(f"port {port} is taken: is another demo running?")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _say(f"corpus: {len(conversations)} conversations, {len(plan)} messages ({corpus_dir})")

        env = await self._connections()
        if self.stop.is_set():
            return
        for service in ("ingest", "router", "sla"):
            _say(f"migrating: casewire-{service} migrate")
            await services.migrate(service, env, self.log_dir)
        if self.stop.is_set():
            return

        specs = [
            services.ServiceSpec(
                "ingest", INGEST_PORT, {"CASEWIRE_INTEGRATIONS": self.integration.settings()}
            ),
            services.ServiceSpec(
                "router",
                ROUTER_PORT,
                {
                    "CASEWIRE_ROUTER_RULES": str(config["rules"]),
                    "CASEWIRE_ROUTER_AGENTS": str(config["agents"]),
                    "CASEWIRE_ROUTER_SAVED_REPLIES": str(config["saved_replies"]),
                    **self.identity.router_env(),
                },
            ),
            services.ServiceSpec("sla", SLA_PORT, {"CASEWIRE_SLA_POLICIES": str(config["sla"])}),
        ]
        for spec in specs:
            self.running.append(services.start(spec, env, self.log_dir))
        _say(f"services starting, logs in {self.log_dir}/<service>.log")
        ready = await asyncio.gather(
            *(services.wait_ready(service, self.stop) for service in self.running)
        )
        if not all(ready):
            return
        _say(
            "ready: "
            + ", ".join(f"{s.spec.name} http://127.0.0.1:{s.spec.port}" for s in self.running)
        )
        await self._replay_and_watch(plan, env["CASEWIRE_KAFKA_BOOTSTRAP_SERVERS"])

    def _config_files(self) -> dict[str, Path]:
        config = {
            "rules": self.root / "config" / "rules.yaml",
            "agents": self.root / "config" / "agents.yaml",
            "saved_replies": self.root / "config" / "saved-replies.yaml",
            "sla": self.root / "config" / "demo" / "sla-policies.yaml",
        }
        for path in config.values():
            if not path.is_file():
                raise DemoError(f"missing configuration file {path}")
        return config

    async def _connections(self) -> dict[str, str]:
        """The service environment: the local stack's broker and a fresh demo database, or
        (without the stack) the Kafka and PostgreSQL named in the environment, as they are."""
        env = dict(os.environ)
        if not self.options.use_stack:
            if "CASEWIRE_DATABASE_URL" not in env:
                raise DemoError("--no-stack needs CASEWIRE_DATABASE_URL (and Kafka settings)")
            bootstrap = env.setdefault("CASEWIRE_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
            await stack.create_topics(bootstrap)
            _say(f"using Kafka at {bootstrap} and the database in CASEWIRE_DATABASE_URL")
            return env
        already_running = stack.running_stack(self.state_dir) is not None
        _say("local stack: " + ("reusing the running one" if already_running else "starting"))
        self.started_stack = not already_running
        running = await asyncio.to_thread(
            stack.up, self.state_dir, database_url=os.environ.get("CASEWIRE_DATABASE_URL")
        )
        database_url = await stack.ensure_database(running.database_url, DEMO_DATABASE, fresh=True)
        _say(f"kafka {running.kafka_bootstrap_servers}, database {database_url} (recreated)")
        env.update(running.env())
        env["CASEWIRE_DATABASE_URL"] = database_url
        return env

    async def _replay_and_watch(self, plan: list[ScheduledMessage], bootstrap: str) -> None:
        options = self.options
        progress = ReplayProgress(planned=len(plan))
        summary = DemoSummary()
        desk = DeskProgress()
        since_ms = int(time.time() * 1000)
        self._spawn(
            "replay", replay(plan, f"http://127.0.0.1:{INGEST_PORT}", self.integration, progress)
        )
        self._spawn("care desk", self._care_desk(plan, summary, progress, desk))
        self._spawn(
            "summary consumer",
            follow(bootstrap, summary, since_ms=since_ms, group_id=f"casewire-demo-{since_ms}"),
        )
        interactive = sys.stdout.isatty()
        self._spawn(
            "summary display",
            show(summary, progress, desk, speed=options.speed, interactive=interactive),
        )
        loop = asyncio.get_running_loop()
        deadline = None if options.duration is None else loop.time() + options.duration
        while not self.stop.is_set():
            if deadline is not None and loop.time() >= deadline:
                break
            for service in self.running:
                if service.process.poll() is not None:
                    raise DemoError(service.describe_exit())
            for task in self.tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    raise DemoError(f"{task.get_name()} failed: {task.exception()!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=0.5)

    async def _care_desk(
        self,
        plan: list[ScheduledMessage],
        summary: DemoSummary,
        progress: ReplayProgress,
        desk: DeskProgress,
    ) -> None:
        planned = plan_resolutions(plan, speed=self.options.speed)
        router_url = f"http://127.0.0.1:{ROUTER_PORT}"
        desk_token = self.identity.token(
            DESK_ID, ["lead"], teams=load_rules(str(self._config_files()["rules"])).teams
        )
        async with router_client(router_url, desk_token) as client:
            await run_care_desk(planned, summary, progress, client, desk)

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(work, name=name))

    async def _shutdown(self) -> None:
        """Stop what this run started, in the order that loses nothing: the replay and the
        summary first, then the services, then the stack."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.running:
            _say("stopping the services (SIGTERM)")
            # A service that died on its own has already been reported.
            stopping = [service for service in self.running if service.process.poll() is None]
            killed = await services.stop_all(stopping)
            if killed:
                _say(f"killed after {services.STOP_TIMEOUT_SECONDS:.0f}s: {', '.join(killed)}")
            for service in stopping:
                if service.spec.name not in killed and not service.exited_cleanly:
                    _say(service.describe_exit())
        if self.started_stack:
            _say("stopping the local stack")
            await asyncio.to_thread(stack.down, self.state_dir)
        elif self.options.use_stack:
            _say(f"the local stack was running before the demo: left running ({self.state_dir})")
        _say("demo stopped")
