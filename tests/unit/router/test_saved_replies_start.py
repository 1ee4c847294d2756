"""The router refuses to start on rules naming a saved reply the saved-replies file lacks: a
clear error before anything runs (no Kafka, no database needed to see it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from casewire_router.domain.saved_replies import SavedRepliesError
from casewire_router.main import create_app
from casewire_router.settings import RouterSettings

RULES = """version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: parcel
    when: {any: [parcel]}
    then: {team: shipping, reply_template: shipping-policy}
"""


def settings(tmp_path: Path, rules: str, **fields: object) -> RouterSettings:
    (tmp_path / "rules.yaml").write_text(rules, "utf-8")
    return RouterSettings.model_validate(
        {"router_rules": tmp_path / "rules.yaml", "router_agents": None, **fields}
    )


def test_rules_naming_a_missing_saved_reply_stop_the_router_before_it_starts(
    tmp_path: Path,
) -> None:
    replies = tmp_path / "replies.yaml"
    replies.write_text("replies:\n  - {id: other, title: O, text: {th: สวัสดีค่ะ}}\n", "utf-8")
    with pytest.raises(SavedRepliesError) as refused:
        create_app(settings(tmp_path, RULES, router_saved_replies=replies))
    assert refused.value.problems == [
        f"{tmp_path / 'rules.yaml'}:7: rule 'parcel': then.reply_template: no saved reply"
        f" 'shipping-policy' in {replies}"
    ]
    replies.write_text(
        "replies:\n  - {id: shipping-policy, title: S, text: {el: 'Γεια σας {customer_name}'}}\n",
        "utf-8",
    )
    assert create_app(settings(tmp_path, RULES, router_saved_replies=replies)) is not None


def test_a_configured_file_must_exist_the_default_one_may_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(FileNotFoundError):
        create_app(settings(tmp_path, RULES, router_saved_replies=tmp_path / "absent.yaml"))
    monkeypatch.chdir(tmp_path)  # no config/saved-replies.yaml here
    plain = RULES.replace(", reply_template: shipping-policy", "")
    assert create_app(settings(tmp_path, plain)) is not None
    with pytest.raises(SavedRepliesError, match=r"no saved-replies file"):
        create_app(settings(tmp_path, RULES))
