"""`make bench`, router part (same run, same broker, same partitions, same messages):

- `passthrough_msgs_per_s`: a bare aiokafka consume → produce loop, the ceiling of a
  Kafka-to-Kafka service with one Python client here;
- `router_msgs_per_s`: the real router app (in this process) from canonical messages to
  committed cases and relayed case events;
- `router_vs_passthrough`: their ratio (the goal is at least 0.5).

The passthrough runs before and after the router; the two measurements are in bench_runs.py,
the messages in bench_workload.py.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from casewire_common import topics
from casewire_common.kafka import POLL_TIMEOUT_MS
from casewire_common.pg import migrate

from casewire_dev import bench_runs, bench_workload, stack
from casewire_dev.paths import repo_root, shared_data
from casewire_dev.results import BenchError, Results, metric, ratio


@dataclass(frozen=True)
class RouterOptions:
    messages: int
    partitions: int
    max_records: int
    seed: int
    timeout: float
    profile: Path | None  # cProfile the router phase into this file


async def measure(options: RouterOptions, bootstrap: str, server_url: str, work: Path) -> Results:
    """Passthrough, router, passthrough again, on the running broker and PostgreSQL server."""
    # The router is imported here: casewire-dev does not depend on it to be installed.
    from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA

    tag = uuid.uuid4().hex[:10]
    print(f"building {options.messages:,} messages from the TWCS sample ...", flush=True)
    corpus = bench_workload.read_twcs_sample(shared_data(repo_root()))
    records, conversations = bench_workload.build_workload(
        corpus, options.messages, seed=options.seed
    )
    rules = work / "rules.yaml"
    rules.write_text(bench_workload.RULES_YAML, "utf-8")
    agents = work / "agents.yaml"
    agents.write_text(bench_workload.agents_yaml(max(options.messages, 1000)), "utf-8")
    saved_replies = work / "saved-replies.yaml"
    saved_replies.write_text(bench_workload.SAVED_REPLIES_YAML, "utf-8")
    expectation = bench_workload.expected_outcome(records, rules, agents)
    # The workload (tens of thousands of objects) lives in this process but belongs to
    # neither measured loop: frozen, the garbage collector no longer walks it on every full
    # collection, as it would not in a real service's process.
    gc.collect()
    gc.freeze()

    database = await stack.ensure_database(server_url, f"casewire_bench_{tag}")
    try:
        await migrate(database, SCHEMA, MIGRATIONS_PACKAGE)
        source = f"bench.passthrough.in.{tag}"
        targets = [f"bench.passthrough.out.{tag}.{round_}" for round_ in (1, 2)]
        await stack.create_topics(bootstrap, options.partitions, names=[source, *targets])
        print("producing them to the router's and the passthrough's input topics ...", flush=True)
        await bench_runs.produce(bootstrap, source, records)
        last_per_partition = await bench_runs.produce(bootstrap, topics.MESSAGES, records)

        # The passthrough runs before and after the router: on a shared machine, a
        # difference between the two shows how steady the ceiling was.
        async def passthrough(round_: int) -> bench_runs.Timing:
            print(f"passthrough ({round_}/2): aiokafka consume → produce ...", flush=True)
            timing = await bench_runs.passthrough(
                bootstrap,
                source,
                targets[round_ - 1],
                len(records),
                group=f"bench-passthrough-{tag}-{round_}",
                max_records=options.max_records,
                batch_timeout_ms=POLL_TIMEOUT_MS,  # as the router polls
                timeout=options.timeout,
            )
            copied = await bench_runs.read_topic(bootstrap, targets[round_ - 1], len(records))
            if len(copied) != len(records):
                raise BenchError(f"passthrough wrote {len(copied)} of {len(records)} records")
            return timing

        before = await passthrough(1)
        print(
            f"router: {len(records):,} messages → {expectation.cases:,} cases,"
            f" {expectation.total_events:,} case events ...",
            flush=True,
        )
        profiler = cProfile.Profile() if options.profile is not None else None
        routed = await bench_runs.run_router(
            database,
            bootstrap,
            records,
            last_per_partition,
            expectation,
            rules=rules,
            agents=agents,
            saved_replies=saved_replies,
            group=f"bench-router-{tag}",
            max_records=options.max_records,
            timeout=options.timeout,
            profiler=profiler,
        )
        after = await passthrough(2)
        per_batch = {
            size: await _batch_cost(
                options,
                database_url=server_url,
                bootstrap=bootstrap,
                records=records,
                last_per_partition=last_per_partition,
                rules=rules,
                saved_replies=saved_replies,
                work=work,
                tag=tag,
                roster=size,
            )
            for size in ROSTER_SIZES
        }
    finally:
        gc.unfreeze()
        await stack.drop_database(server_url, database)
    if profiler is not None and options.profile is not None:
        profiler.dump_stats(str(options.profile))
        print(f"\nrouter profile (cProfile, by own time; full stats in {options.profile}):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(30)
    passthrough_rate = (before.rate + after.rate) / 2
    print(
        f"passthrough: {before.rate:,.0f} msgs/s before the router, {after.rate:,.0f} after"
        f" (spread {ratio(abs(before.rate - after.rate), passthrough_rate):.0%})"
    )
    print(
        f"router: {routed.timing.seconds:.2f}s for {routed.timing.messages:,} messages,"
        f" {routed.batches} batches, {ratio(routed.batch_seconds, routed.timing.seconds):.0%}"
        " of the time inside batch transactions"
    )
    message_bytes = sum(len(record.value) for record in records) / len(records)
    return {
        "passthrough_msgs_per_s": metric(passthrough_rate, "msgs/s"),
        "router_msgs_per_s": metric(routed.timing.rate, "msgs/s"),
        "router_vs_passthrough": metric(ratio(routed.timing.rate, passthrough_rate), "ratio"),
        "bench_messages": metric(len(records), "count"),
        "bench_conversations": metric(conversations, "count"),
        "bench_partitions": metric(options.partitions, "count"),
        "bench_message_bytes": metric(message_bytes, "bytes"),
        "router_case_events": metric(sum(routed.events.values()), "count"),
        **{f"router_batch_ms_{size}_agents": metric(ms, "ms") for size, ms in per_batch.items()},
        "router_batch_500_vs_50_agents": metric(
            ratio(per_batch[ROSTER_SIZES[-1]], per_batch[ROSTER_SIZES[0]]), "ratio"
        ),
    }


# A batch's cost as the roster grows: the same messages routed again, in batches as small as
# a moderate rate makes them, once with each roster (agents on the rules' five teams).
ROSTER_SIZES = (50, 500)
ROSTER_BATCH_RECORDS = 20


async def _batch_cost(
    options: RouterOptions,
    *,
    database_url: str,
    bootstrap: str,
    records: list[bench_workload.Record],
    last_per_partition: dict[int, int],
    rules: Path,
    saved_replies: Path,
    work: Path,
    tag: str,
    roster: int,
) -> float:
    """Milliseconds inside the router's batch transactions per batch, with `roster` agents."""
    from casewire_router.adapters.repository import MIGRATIONS_PACKAGE, SCHEMA
    from casewire_router.domain.rules import load_rules

    agents = work / f"agents-{roster}.yaml"
    teams = load_rules(str(rules)).teams
    agents.write_text(bench_workload.roster_yaml(roster, len(records), teams), "utf-8")
    expectation = bench_workload.expected_outcome(records, rules, agents)
    await stack.empty_topics(bootstrap, [topics.CASE_EVENTS], options.partitions)
    database = await stack.ensure_database(database_url, f"casewire_bench_{tag}_{roster}")
    try:
        await migrate(database, SCHEMA, MIGRATIONS_PACKAGE)
        print(f"router with {roster} agents, batches of {ROSTER_BATCH_RECORDS} ...", flush=True)
        routed = await bench_runs.run_router(
            database,
            bootstrap,
            records,
            last_per_partition,
            expectation,
            rules=rules,
            agents=agents,
            saved_replies=saved_replies,
            group=f"bench-router-{tag}-{roster}",
            max_records=ROSTER_BATCH_RECORDS,
            timeout=options.timeout,
        )
    finally:
        await stack.drop_database(database_url, database)
    per_batch_ms = 1000 * routed.batch_seconds / max(routed.batches, 1)
    print(f"  {routed.batches:,} batches, {per_batch_ms:.2f} ms each", flush=True)
    return per_batch_ms


def run(running: stack.Stack, work: Path, options: RouterOptions) -> Results:
    """The router figures, measured on a running local stack (`stack.up`)."""
    return asyncio.run(
        measure(options, running.kafka_bootstrap_servers, running.database_url, work)
    )
