"""`make bench`: throughput figures measured on a fresh local stack, written to
`bench/results.json` and printed as a table.

`bench/results.json` maps a metric name to `{"value": number, "unit": string}`. Every run
overwrites only the metrics it measures, so benchmarks added later keep each other's figures.

On one fresh stack (same run, same broker, same partitions, same messages):
- `passthrough_msgs_per_s`: a bare aiokafka consume → produce loop, the ceiling of a
  Kafka-to-Kafka service with one Python client here;
- `router_msgs_per_s`: the real router app (in this process) from canonical messages to
  committed cases and relayed case events;
- `router_vs_passthrough`: their ratio (the goal is at least 0.5); see bench_router.py.

And on the same stack, `ingest_requests_per_s` and `ingest_vs_bare_asgi`: see bench_ingest.py.
And `sla_breach_lateness_p99_s`: see bench_sla.py. And on a fresh stack, what the whole stack
costs (`stack_idle_cores`, `cpu_ms_per_msg_at_20`, `cpu_ms_per_msg_at_200`, each also per
process) with `e2e_latency_p99_ms` at 200 messages/s in the same run: see bench_e2e.py.
And `rules_10k_vs_10`, `naive_regex_10k_vs_10`: see bench_rules.py (no stack needed).
`--only router|ingest|sla|e2e|rules` runs one of them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from casewire_common.logging import configure_logging

from casewire_dev import bench_e2e, bench_ingest, bench_router, stack
from casewire_dev.paths import repo_root, shared_data
from casewire_dev.results import (
    RESULTS,
    BenchError,
    Results,
    format_table,
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

    def router(self) -> bench_router.RouterOptions:
        return bench_router.RouterOptions(
            messages=self.messages,
            partitions=self.partitions,
            max_records=self.max_records,
            seed=self.seed,
            timeout=self.timeout,
            profile=self.profile,
        )


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
            measured |= bench_router.run(running, state_dir, options.router())
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
