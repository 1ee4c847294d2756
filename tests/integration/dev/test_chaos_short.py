"""The short chaos run inside `make test`: about 2,000 messages through ingest's signed
webhooks, the router SIGKILLed twice and frozen for longer than the first-response target,
every output checked by the oracle.

The run starts its own local stack (`casewire_dev.stack`, as the session's fixture does, on
free ports in a temporary folder): it freezes processes and must not mix its outputs with
other tests' traffic. With CASEWIRE_TEST_DATABASE_URL it uses that PostgreSQL server (a fresh
database on it) as every other test does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from casewire_dev.chaos import runner

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """Outside pytest's temporary folders: PostgreSQL runs as another user there (when root),
    and a pytest session starting meanwhile makes /tmp/pytest-of-<user> private again."""
    folder = Path(tempfile.mkdtemp(prefix="casewire-chaos-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_short_chaos_run_with_a_killed_and_a_frozen_router_passes_every_check(
    run_dir: Path,
) -> None:
    options = runner.ChaosOptions(
        messages=2000,
        seed=2026,
        faults=("kill-router", "freeze-router"),
        # The plan lasts the openings (messages / rate) plus up to 1.7 targets of replies, and
        # the freeze lasts the target + 5 s: at 10 s every case is still there (replies either
        # side of the deadline, replies processed after it) and the plan is 43 s, not 59 s.
        first_response_seconds=10.0,
        messages_per_second=100.0,
        replicas=1,
        partitions=3,
        run_dir=run_dir,
        results=run_dir / "results.json",
        database_server_url=os.environ.get("CASEWIRE_TEST_DATABASE_URL"),
    )
    chaos = runner.ChaosRun(options, ROOT)
    started = time.monotonic()
    code = asyncio.run(chaos.main())  # 1: a violation
    elapsed = time.monotonic() - started

    results = json.loads((run_dir / "results.json").read_text("utf-8"))
    assert results["faults_injected"]["value"] == 3  # two kills and a freeze
    assert results["accepted_messages"]["value"] > 1900
    failing = [
        f"{row.name}={row.value:g} ({row.detail})" for row in chaos.verdicts if row.ok is False
    ]
    assert failing == [], "failing rows:\n" + "\n".join(failing)
    assert code == 0
    print(
        f"the short chaos run took {elapsed:.0f}s"
    )  # its budget (2 min) is reported, not asserted
