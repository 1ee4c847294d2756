"""`casewire-router check-rules FILE`: problems on stderr and exit 1, or a one-line summary."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_router.domain.rules import parse_rules
from casewire_router.entrypoints.cli import main

HEAD = "version: 1\ndefault_team: care\nteams: [care, shipping]\nrules:\n"


def test_check_rules_exits_1_listing_problems_and_0_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "  - id: a\n    then: {team: nowhere}\n  - id: a\n", "utf-8")
    assert main(["check-rules", str(bad)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"{bad}:6: rule 'a': then.team: team 'nowhere' is not in teams",
        f"{bad}:7: rule 'a': id: duplicate id 'a'",
        f"{bad}: 2 problem(s)",
    ]

    good = tmp_path / "good.yaml"
    good.write_text(
        HEAD
        + "  - id: a\n    when: {any: [refund, Refund, αποστολή]}\n    then: {team: shipping}\n",
        "utf-8",
    )
    assert main(["check-rules", str(good)]) == 0
    out = capsys.readouterr().out.strip()
    version = parse_rules(good.read_text("utf-8")).version
    assert out == f"{good}: ok, 1 rules, 2 keywords, 0 escalations, version {version}"

    handing = tmp_path / "handoff.yaml"
    handing.write_text(
        good.read_text("utf-8")
        + "handoff: {customer_says: [agent, موظف, άνθρωπο, เจ้าหน้าที่], bot_says: ['#handoff']}\n",
        "utf-8",
    )
    assert main(["check-rules", str(handing)]) == 0
    version = parse_rules(handing.read_text("utf-8")).version
    assert capsys.readouterr().out.strip() == (
        f"{handing}: ok, 1 rules, 2 keywords, 0 escalations, 5 handoff keywords, version {version}"
    )


def test_check_rules_reports_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-rules", str(tmp_path / "missing.yaml")]) == 1
    assert "No such file or directory" in capsys.readouterr().err
    binary = tmp_path / "latin1.yaml"
    binary.write_bytes(HEAD.encode() + "  - id: caf\xe9\n".encode("latin-1"))
    assert main(["check-rules", str(binary)]) == 1
    assert "not UTF-8 text" in capsys.readouterr().err
