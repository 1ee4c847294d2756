"""`make bench`: throughput figures measured on a fresh local stack, written to
`bench/results.json` and printed as a table.

`bench/results.json` maps a metric name to `{"value": number, "unit": string}`. Every run
overwrites only the metrics it measures, so benchmarks added later keep each other's figures.

This benchmark (same run, same broker, same partitions, same messages):
- `passthrough_msgs_per_s`: a bare aiokafka consume → produce loop, the ceiling of a
  Kafka-to-Kafka service with one Python client here;
- `router_msgs_per_s`: the real router app (in this process) from canonical messages to
  committed cases and relayed case events;
- `router_vs_passthrough`: their ratio (the goal is at least 0.5).

And on the same stack, `ingest_requests_per_s` and `ingest_vs_bare_asgi`: see bench_ingest.py.
And `sla_breach_lateness_p99_s`: see bench_sla.py; `e2e_latency_p99_ms`: see bench_e2e.py.
And `rules_10k_vs_10`, `naive_regex_10k_vs_10`: see bench_rules.py (no stack needed).
`--only router|ingest|sla|e2e|rules` runs one of them.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from casewire_common import topics
from casewire_common.kafka import POLL_TIMEOUT_MS
from casewire_common.logging import configure_logging
from casewire_common.pg import migrate

from casewire_dev import bench_e2e, bench_ingest, bench_runs, bench_workload, stack
from casewire_dev.paths import repo_root, shared_data
from casewire_dev.results import (
    RESULTS,
    BenchError,
    Results,
    format_table,
    metric,
    ratio,
    write_results,
)


@dataclass(frozen=True)
class Options:
    messages: int
    partitions: int
    max_records: int
    seed: int
    output: Path
    profile: Path | None
    timeout: float
    only: str | None = None  # "router", "ingest", "sla", "e2e" or "rules"; None: all


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="casewire-dev bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--messages", type=_positive_int, default=20_000, help="canonical messages per run"
    )
    parser.add_argument(
        "--partitions", type=_positive_int, default=6, help="partitions of every topic"
    )
    parser.add_argument(
        "--max-records",
        type=_positive_int,
        default=500,
        help="records per batch, for the router and the passthrough alike",
    )
    parser.add_argument("--seed", type=int, default=7, help="the same seed, the same messages")
    parser.add_argument("--output", type=Path, default=None, help="default: bench/results.json")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="cProfile the router phase into this file and print where its time goes; "
        "figures are then distorted and not written",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per measurement")
    parser.add_argument(
        "--only",
        choices=("router", "ingest", "sla", "e2e", "rules"),
        help="default: every benchmark",
    )
    args = parser.parse_args(list(argv))
    output = args.output if args.output is not None else repo_root() / RESULTS
    return Options(
        messages=args.messages,
        partitions=args.partitions,
        max_records=args.max_records,
        seed=args.seed,
        output=output,
        profile=args.profile,
        timeout=args.timeout,
        only=args.only,
    )


async def _measure(options: Options, bootstrap: str, server_url: str, work: Path) -> Results:
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
        await bench_runs.create_topics(bootstrap, [source, *targets], options.partitions)
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
            group=f"bench-router-{tag}",
            max_records=options.max_records,
            timeout=options.timeout,
            profiler=profiler,
        )
        after = await passthrough(2)
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
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks on a throw-away stack; write and print the figures."""
    options = parse_options(sys.argv[1:] if argv is None else argv)
    configure_logging("WARNING")
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    if options.only == "rules":  # the rules engine alone: no stack to start
        from casewire_dev import bench_rules  # imports the router: only when it runs

        try:
            rules_figures = bench_rules.run(shared_data(repo_root()), options.seed)
        except BenchError as error:
            print(f"bench failed: {error}", file=sys.stderr)
            return 1
        return _record(options, rules_figures)
    state_dir = Path(tempfile.mkdtemp(prefix="casewire-bench-"))
    external_database = os.environ.get("CASEWIRE_DATABASE_URL")
    print(f"starting a local stack in {state_dir} ({options.partitions} partitions) ...")

    def start_stack() -> stack.Stack:
        return stack.up(
            state_dir,
            kafka_port=stack.free_port(),
            postgres_port=stack.free_port(),
            database_url=external_database,
            partitions=options.partitions,
        )

    try:
        running = start_stack()
        measured: Results = {}
        if options.only in (None, "router"):
            measured |= asyncio.run(
                _measure(options, running.kafka_bootstrap_servers, running.database_url, state_dir)
            )
        if options.only in (None, "ingest"):
            measured |= bench_ingest.run(
                running, state_dir, bench_ingest.IngestOptions(seed=options.seed)
            )
        if options.only in (None, "sla"):
            from casewire_dev import bench_sla  # imports the router: only when it runs

            measured |= bench_sla.run(running, state_dir)
        if options.only in (None, "e2e"):
            if options.only is None:
                # A latency of its own: on a fresh stack, not on the topics and tables the
                # benchmarks before it filled (the broker holds them all in memory).
                print("restarting the local stack for the e2e benchmark ...")
                stack.down(state_dir, remove=True)
                running = start_stack()
            measured |= bench_e2e.run(running, state_dir)
        if options.only is None:
            from casewire_dev import bench_rules  # imports the router: only when it runs

            measured |= bench_rules.run(shared_data(repo_root()), options.seed)
    except BenchError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    finally:
        stack.down(state_dir, remove=True)
    if options.profile is not None:
        print(f"\n(profiled run: figures distorted, {options.output} left as it was)")
        print(format_table(measured))
        return 0
    return _record(options, measured)


def _record(options: Options, measured: Results) -> int:
    """Write the figures into the results file and print them."""
    write_results(options.output, measured)
    print(f"\n{options.output}:")
    print(format_table(measured))
    return 0
