"""`casewire-dev`: options reach the demo and the benchmarks; the checkout and data are found."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_dev import bench, cli, demo, failover, paths


def record_demo_options(monkeypatch: pytest.MonkeyPatch) -> list[demo.DemoOptions]:
    seen: list[demo.DemoOptions] = []

    def run(options: demo.DemoOptions) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(demo, "run", run)
    return seen


def test_demo_options_come_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = record_demo_options(monkeypatch)
    argv = ["demo", "--speed", "120", "--conversations", "5", "--arrival-seconds", "0"]
    assert cli.main([*argv, "--no-stack", "--duration", "30"]) == 0
    assert seen == [
        demo.DemoOptions(
            speed=120, conversations=5, arrival_seconds=0, use_stack=False, duration=30
        )
    ]


def test_demo_defaults_replay_everything_at_60x_until_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = record_demo_options(monkeypatch)
    cli.main(["demo"])
    assert seen == [demo.DemoOptions()]
    assert (seen[0].speed, seen[0].arrival_seconds, seen[0].duration) == (60, 0.5, None)


@pytest.mark.parametrize(
    "argv",
    [["demo", "--speed", "0"], ["demo", "--conversations", "0"], ["demo", "--bogus"]],
)
def test_bad_demo_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2


def test_bench_parses_its_own_options(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str] | None] = []

    def bench_main(argv: list[str] | None = None) -> int:
        seen.append(argv)
        return 0

    monkeypatch.setattr(bench, "main", bench_main)
    assert cli.main(["bench", "--messages", "100"]) == 0
    assert seen == [["--messages", "100"]]


def test_repo_root_is_found_from_a_subfolder() -> None:
    root = paths.repo_root(Path(__file__).parent)
    assert (root / "tools" / "dev" / "casewire_dev" / "cli.py").is_file()


def test_shared_data_can_be_moved_with_an_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "corpus").mkdir()
    monkeypatch.setenv("CASEWIRE_SHARED_DATA", str(tmp_path))
    assert paths.shared_data(Path("/nowhere")) == tmp_path


def test_missing_shared_data_says_how_to_point_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CASEWIRE_SHARED_DATA", raising=False)
    with pytest.raises(RuntimeError, match="CASEWIRE_SHARED_DATA"):
        paths.shared_data(tmp_path / "repo")


def test_failover_options_come_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: list[failover.Options] = []

    def run(options: failover.Options) -> int:
        seen.append(options)
        return 0

    monkeypatch.setattr(failover, "run", run)
    assert cli.main(["failover", "--rate", "200", "--rounds", "3", "--log-dir", str(tmp_path)]) == 0
    assert cli.main(["failover"]) == 0
    assert seen == [failover.Options(rate=200, rounds=3, log_dir=tmp_path), failover.Options()]
