"""`casewire-router check-rules FILE [--saved-replies FILE]`: problems on stderr and exit 1, or
a one-line summary per file; a rule's `reply_template` must name a saved reply."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_router.domain.rules import parse_rules
from casewire_router.entrypoints.cli import main

HEAD = "version: 1\ndefault_team: care\nteams: [care, shipping]\nrules:\n"


def test_check_rules_exits_1_listing_problems_and_0_with_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no saved-replies file where the default looks: none needed
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


RULES = HEAD + (
    "  - id: parcel\n"
    "    when: {any: [parcel]}\n"
    "    then: {team: shipping, reply_template: shipping-policy}\n"
    "  - id: refund\n"
    "    when: {any: [refund]}\n"
    "    then: {reply_template: refund-policy}\n"
)
REPLIES = """\
replies:
  - id: shipping-policy
    title: Shipping
    teams: [shipping]
    text: {en: "Hi {customer_name}", ar: "مرحباً {customer_name}"}
  - id: refund-policy
    title: Refunds
    teams: [billing]
    text: {el: "Γεια σας {customer_name}", th: "สวัสดีค่ะคุณ{customer_name}"}
"""


def test_a_rule_naming_a_missing_saved_reply_fails_at_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, "utf-8")
    replies = tmp_path / "replies.yaml"
    replies.write_text(REPLIES.split("  - id: refund-policy")[0], "utf-8")
    assert main(["check-rules", str(rules), "--saved-replies", str(replies)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{rules}:10: rule 'refund': then.reply_template: no saved reply 'refund-policy'"
        f" in {replies}",
        f"{rules}: 1 problem(s)",
    ]


def test_the_pair_passes_with_warnings_for_teams_the_rules_do_not_declare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, "utf-8")
    replies = tmp_path / "replies.yaml"
    replies.write_text(REPLIES, "utf-8")
    assert main(["check-rules", str(rules), "--saved-replies", str(replies)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1] == f"{replies}: ok, 2 saved replies"
    assert captured.err.splitlines() == [
        f"{replies}: warning: replies.1.teams.0: team 'billing' is not in the rules file's teams"
    ]


def test_the_saved_replies_file_comes_from_the_setting_and_its_problems_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, "utf-8")
    replies = tmp_path / "configured.yaml"
    replies.write_text(REPLIES.replace('{customer_name}"}', '{customer_name.__dict__}"}', 1))
    monkeypatch.setenv("CASEWIRE_ROUTER_SAVED_REPLIES", str(replies))
    assert main(["check-rules", str(rules)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(
        f"{replies}:5: saved reply 'shipping-policy': text.ar: unknown placeholder"
        " {customer_name.__dict__}"
    )
    assert err[1:] == [f"{replies}: 1 problem(s)"]


def test_without_a_saved_replies_file_every_reply_template_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, "utf-8")
    assert main(["check-rules", str(rules)]) == 1
    missing = "no saved-replies file (config/saved-replies.yaml)"
    assert capsys.readouterr().err.splitlines() == [
        f"{rules}:7: rule 'parcel': then.reply_template: no saved reply 'shipping-policy'"
        f" in {missing}",
        f"{rules}:10: rule 'refund': then.reply_template: no saved reply 'refund-policy'"
        f" in {missing}",
        f"{rules}: 2 problem(s)",
    ]
    # Named on the command line, a file that cannot be read is a problem of its own.
    assert main(["check-rules", str(rules), "--saved-replies", "absent.yaml"]) == 1
    assert "absent.yaml: No such file or directory" in capsys.readouterr().err
