"""`casewire-router route`: a setup file that cannot be used stops the run (exit 2, one line
per problem, no traceback); a bad input line costs only itself (`FILE:LINE: reason`, exit 1)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from casewire_router.entrypoints.cli import main

from tests.unit.router.factories import message

RULES = """version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: shipping
    when: {any: [tracking]}
    then: {team: shipping, priority: P3, tags: [shipping]}
"""
AGENTS = """agents:
  - {id: zoe, teams: [care], languages: [en], capacity: 5}
  - {id: max, teams: [care], languages: [es], capacity: 5}
"""


def line(text: str, pid: str, **changes: Any) -> str:
    return message(text, pid=pid, conversation=f"x:brand:{pid}:cust", **changes).model_dump_json()


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES, "utf-8")
    return path


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    return path


def route(
    capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, list[dict[str, Any]], list[str]]:
    code = main(["route", *argv])
    captured = capsys.readouterr()
    return code, [json.loads(row) for row in captured.out.splitlines()], captured.err.splitlines()


def test_good_input_is_routed_with_exit_0(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "in.jsonl", line("tracking please", "m1") + "\n\n")
    code, out, err = route(capsys, "--rules", str(rules), str(source))
    assert (code, err) == (0, [])
    assert [(row["team"], row["priority"], row["matched_rules"]) for row in out] == [
        ("shipping", "P3", ["shipping"])
    ]


def test_each_bad_line_is_reported_and_skipped_and_the_others_routed(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(
        tmp_path,
        "in.jsonl",
        line("first", "m1").encode()
        + b"\ncaf\xe9 au lait\n"
        + b"{not json\n"
        + b"[1, 2]\n"
        + b'{"id": "x"}\n'
        + line("caf\u00e9 tracking", "m6").encode()
        + b"\n",
    )
    code, out, err = route(capsys, "--rules", str(rules), str(source))
    assert code == 1
    assert [row["message_id"] for row in out] == [
        message("", pid="m1").id,
        message("", pid="m6").id,
    ]
    assert out[1]["team"] == "shipping"
    assert err[0] == f"{source}:2: not UTF-8 text: invalid continuation byte at byte 4 of the line"
    assert err[1].startswith(f"{source}:3: Invalid JSON: ")
    assert err[2] == f"{source}:4: Input should be an object"
    assert err[3].startswith(f"{source}:5: platform: Field required; channel: Field required;")
    assert err[3].endswith("more)")
    assert len(err) == 4


def test_stdin_is_read_as_bytes_and_named_stdin(
    rules: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"\xff\xfe\n" + line("tracking", "m2").encode() + b"\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    code, out, err = route(capsys, "--rules", str(rules), "-")
    assert code == 1
    assert [row["team"] for row in out] == ["shipping"]
    assert err == ["<stdin>:1: not UTF-8 text: invalid start byte at byte 1 of the line"]


def test_a_byte_order_mark_at_the_start_is_not_an_error(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path, "in.jsonl", b"\xef\xbb\xbf" + line("tracking", "m1").encode())
    code, out, err = route(capsys, "--rules", str(rules), str(source))
    assert (code, len(out), err) == (0, 1, [])


def test_a_missing_input_file_is_rejected_input(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.jsonl"
    code, out, err = route(capsys, "--rules", str(rules), str(missing))
    assert (code, out, err) == (1, [], [f"{missing}: cannot read: No such file or directory"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "agents:\n  - {id: a, teams: [care], capacity: -1}\n",
            ["{}:2: agent 'a': capacity: Input should be greater than or equal to 0"],
        ),
        (
            "agents:\n  - {id: a, teams: care, capacity: 2}\n",
            ["{}:2: agent 'a': teams: Input should be a valid list"],
        ),
        (
            "agents:\n"
            "  - {id: a, teams: [care], capacity: 2}\n"
            "  - {id: a, teams: [care], capacity: 3}\n",
            ["{}:3: agent 'a': id: duplicate agent id 'a'"],
        ),
        ("", ["{}: the agents file is empty: expected `agents: [...]`"]),
        (
            "agents:\n  - {id: zoe, teams: [care], languages: [EN], capacity: 5}\n",
            [
                "{}:2: agent 'zoe': languages.0: language 'EN' is not a lower-case ISO 639-1"
                " code such as 'en': write 'en'"
            ],
        ),
        (
            "agents:\n  - {id: zoe, teams: [suport], capacity: 5}\n",
            [
                "{}:2: agent 'zoe': teams.0: team 'suport' is not in the rules file's teams"
                " (care, shipping): this agent would never get its cases"
            ],
        ),
        (
            b"agents:\n  - {id: caf\xe9, teams: [care], capacity: 2}\n",
            ["{}:2: not UTF-8 text: invalid continuation byte at byte 13 of the line"],
        ),
    ],
)
def test_an_agents_file_that_cannot_be_used_stops_the_run_with_exit_2(
    rules: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | bytes,
    expected: list[str],
) -> None:
    agents = write(tmp_path, "agents.yaml", content)
    source = write(tmp_path, "in.jsonl", line("tracking", "m1") + "\n")
    code, out, err = route(capsys, "--rules", str(rules), "--agents", str(agents), str(source))
    assert (code, out) == (2, [])
    assert err == [text.format(agents) for text in expected]


def test_an_agents_yaml_syntax_error_gives_its_line(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    agents = write(tmp_path, "agents.yaml", "agents:\n  - {id: a, teams: [care], capacity: 2\n")
    code, out, err = route(capsys, "--rules", str(rules), "--agents", str(agents), "-")
    assert (code, out) == (2, [])
    assert err[0].startswith(f"{agents}:3: not valid YAML: ")


def test_missing_or_broken_setup_files_stop_the_run_with_exit_2(
    rules: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.yaml"
    source = write(tmp_path, "in.jsonl", line("tracking", "m1") + "\n")
    assert route(capsys, "--rules", str(missing), str(source)) == (
        2,
        [],
        [f"{missing}: cannot read: No such file or directory"],
    )
    assert route(capsys, "--rules", str(rules), "--agents", str(missing), str(source)) == (
        2,
        [],
        [f"{missing}: cannot read: No such file or directory"],
    )
    latin1 = write(tmp_path, "latin1.yaml", RULES.encode() + "  - id: caf\xe9\n".encode("latin-1"))
    code, out, err = route(capsys, "--rules", str(latin1), str(source))
    assert (code, out) == (2, [])
    assert err == [f"{latin1}:8: not UTF-8 text: invalid continuation byte at byte 12 of the line"]
    broken = write(tmp_path, "broken.yaml", RULES.replace("team: shipping,", "team: nowhere,"))
    code, out, err = route(capsys, "--rules", str(broken), str(source))
    assert (code, out) == (2, [])
    assert err == [f"{broken}:7: rule 'shipping': then.team: team 'nowhere' is not in teams"]


def signals_of(row: dict[str, Any]) -> set[str]:
    return {signal["name"] for signal in row["urgency"]["signals"]}


@pytest.mark.parametrize(("minutes_apart", "bursts"), [(4 * 24 * 60, False), (1, True)])
def test_a_burst_counts_only_messages_within_the_incident_window(
    rules: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    minutes_apart: int,
    bursts: bool,
) -> None:
    outage = [
        message(
            "the app is down, outage again",
            pid=f"o{n}",
            conversation=f"x:brand:o{n}:cust{n}",
            author=f"cust{n}",
            minutes=n * minutes_apart,
        ).model_dump_json()
        for n in range(6)
    ]
    source = write(tmp_path, "in.jsonl", "\n".join(outage) + "\n")

    code, out, _ = route(capsys, "--rules", str(rules), str(source))

    assert code == 0
    assert ("burst" in signals_of(out[-1])) is bursts


@pytest.mark.parametrize(("minutes_apart", "repeated"), [(30 * 24 * 60, False), (20, True)])
def test_repeat_contact_counts_only_messages_within_its_window(
    rules: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    minutes_apart: int,
    repeated: bool,
) -> None:
    contacts = [
        message(
            f"hello again {n}",
            pid=f"d{n}",
            channel="dm",
            conversation="x:brand:cust1",
            minutes=n * minutes_apart,
        ).model_dump_json()
        for n in range(3)
    ]
    source = write(tmp_path, "in.jsonl", "\n".join(contacts) + "\n")

    code, out, _ = route(capsys, "--rules", str(rules), str(source))

    assert code == 0
    assert ("repeated_contact" in signals_of(out[-1])) is repeated
