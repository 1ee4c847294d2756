"""`casewire-sla check` and `casewire-sla due`: the offline tools, on good and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from casewire_sla.entrypoints.cli import main

POLICIES = """
version: 1
calendars:
  - {id: always, always_open: true}
  - {id: desk, timezone: Europe/Athens, hours: {mon-fri: ["09:00-17:00"]}}
policies:
  - {id: urgent, match: {priority: [P1]}, calendar: always, first_response: 15m,
     resolution: 4h, warn_at: [0.5, 0.8]}
  - {id: quiet, match: {tags: [spam]}, calendar: always}
  - {id: standard, match: {}, calendar: desk, first_response: 1h}
"""


def opening(case_id: str, **changes: object) -> str:
    fields: dict[str, object] = {
        "case_id": case_id,
        "opened_at": "2026-01-05T10:00:00Z",
        "priority": "P1",
        "team": "care",
        "platform": "x",
        "channel": "mention",
        "visibility": "public",
        "tags": [],
    }
    fields.update(changes)
    return json.dumps(fields, ensure_ascii=False)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICIES, encoding="utf-8")
    return path


def run_due(
    policy_file: Path, lines: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[dict[str, object]], str]:
    source = tmp_path / "openings.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code = main(["due", "--policies", str(policy_file), str(source)])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines()], captured.err


def test_due_writes_one_line_per_clock_that_starts_at_opening(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_due(policy_file, [opening("c-1")], tmp_path, capsys)
    assert code == 0
    assert err == ""
    assert out == [
        {
            "case_id": "c-1",
            "policy": "urgent",
            "clock": "first_response",
            "due_at": "2026-01-05T10:15:00Z",
            "warn_at": ["2026-01-05T10:07:30Z", "2026-01-05T10:12:00Z"],
        },
        {
            "case_id": "c-1",
            "policy": "urgent",
            "clock": "resolution",
            "due_at": "2026-01-05T14:00:00Z",
            "warn_at": ["2026-01-05T12:00:00Z", "2026-01-05T13:12:00Z"],
        },
    ]


def test_due_counts_business_hours_of_the_matched_calendar(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Friday 16:30 in Athens (14:30 UTC): 30 min left on Friday, the rest on Monday morning.
    line = opening("c-2", priority="P3", opened_at="2026-01-09T16:30:00+02:00")
    code, out, _ = run_due(policy_file, [line], tmp_path, capsys)
    assert code == 0
    assert [(row["policy"], row["clock"], row["due_at"]) for row in out] == [
        ("standard", "first_response", "2026-01-12T07:30:00Z")
    ]


def test_due_writes_nothing_for_a_case_whose_policy_has_no_target(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_due(
        policy_file, [opening("c-3", priority="P4", tags=["spam"])], tmp_path, capsys
    )
    assert (code, out, err) == (0, [], "")


def test_due_reports_bad_lines_with_their_number_and_still_processes_good_ones(
    policy_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        opening("c-4"),
        "{not json",
        "",
        opening("c-5", opened_at="2026-01-05T10:00:00"),  # no offset: ambiguous
        opening("c-6", priority="P9"),
        opening("c-7", team="billing"),
    ]
    code, out, err = run_due(policy_file, lines, tmp_path, capsys)
    assert code == 1
    assert {row["case_id"] for row in out} == {"c-4", "c-7"}
    errors = err.splitlines()
    assert len(errors) == 3
    assert errors[0].startswith("line 2: ")
    assert errors[1].startswith("line 4: opened_at:")
    assert errors[2].startswith("line 5: priority:")


def test_due_reads_utf8_json_lines_from_stdin(
    policy_file: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO((opening("حالة-1") + "\n").encode("utf-8")), "utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    code = main(["due", "--policies", str(policy_file), "-"])
    captured = capsys.readouterr()
    assert code == 0
    assert json.loads(captured.out.splitlines()[0])["case_id"] == "حالة-1"


def test_due_refuses_to_run_on_an_invalid_policy_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICIES.replace("first_response: 15m", "first_response: 15"), "utf-8")
    code, out, err = run_due(bad, [opening("c-8")], tmp_path, capsys)
    assert code == 2
    assert out == []
    assert "policy 'urgent': first_response:" in err


def test_check_accepts_a_valid_file(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(policy_file)]) == 0
    assert "ok" in capsys.readouterr().out


def test_check_lists_every_error_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POLICIES.replace("Europe/Athens", "Mars/Olympus").replace(
            "warn_at: [0.5, 0.8]", "warn_at: [2]"
        ),
        "utf-8",
    )
    assert main(["check", str(bad)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    assert any("calendar 'desk': timezone 'Mars/Olympus'" in error for error in errors)
    assert any("policy 'urgent': warn_at" in error for error in errors)
