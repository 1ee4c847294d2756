"""The saved-replies file, watched like the rules file; and the two kept consistent: a changed
file of either that leaves a rule's `reply_template` without its saved reply stays out."""

from __future__ import annotations

from pathlib import Path

from casewire_router.adapters.rules_source import RulesMetrics, RulesWatcher
from casewire_router.adapters.saved_replies_source import (
    SavedRepliesMetrics,
    SavedRepliesWatcher,
    read_saved_replies,
)
from casewire_router.domain.rules import RuleSet, load_rules
from casewire_router.domain.saved_replies import SavedRepliesFile, rules_fit_replies
from prometheus_client import CollectorRegistry

RULES = """version: 1
default_team: care
teams: [care, shipping]
rules:
  - id: parcel
    when: {{any: [parcel]}}
    then: {{team: shipping, reply_template: {template}}}
"""
REPLIES = """replies:
  - id: {reply_id}
    title: Shipping
    text: {{en: "Hi {{customer_name}}", th: "สวัสดีค่ะคุณ{{customer_name}}"}}
"""


class Configuration:
    """The rules and saved replies in force, each file watched, as the router wires them."""

    def __init__(self, tmp_path: Path) -> None:
        self.rules_path = tmp_path / "rules.yaml"
        self.rules_path.write_text(RULES.format(template="shipping-policy"), "utf-8")
        self.replies_path = tmp_path / "replies.yaml"
        self.replies_path.write_text(REPLIES.format(reply_id="shipping-policy"), "utf-8")
        self.registry = CollectorRegistry()
        self.rules = load_rules(str(self.rules_path))
        self.replies, digest = read_saved_replies(self.replies_path)
        self.rules_watcher = RulesWatcher(
            self.rules_path,
            self.rules,
            self.use_rules,
            RulesMetrics(self.registry),
            3600,
            fits=lambda rules, text: self.fit(rules, self.replies, text),
        )
        self.replies_watcher = SavedRepliesWatcher(
            self.replies_path,
            digest,
            self.use_replies,
            lambda replies: self.fit(self.rules, replies, None),
            SavedRepliesMetrics(self.registry),
            3600,
        )

    def fit(self, rules: RuleSet, replies: SavedRepliesFile, text: str | None) -> list[str]:
        return rules_fit_replies(
            rules.spec,
            replies,
            rules_source=str(self.rules_path),
            replies_source=str(self.replies_path),
            rules_text=text,
        )

    def use_rules(self, rules: RuleSet) -> None:
        self.rules = rules
        self.replies_watcher.retry()

    def use_replies(self, replies: SavedRepliesFile) -> None:
        self.replies = replies
        self.rules_watcher.retry()

    def metric(self, name: str) -> float | None:
        return self.registry.get_sample_value(name)


async def test_a_changed_saved_replies_file_is_put_in_force_and_a_broken_one_counted(
    tmp_path: Path,
) -> None:
    config = Configuration(tmp_path)
    assert await config.replies_watcher.check() is None  # unchanged since start
    config.replies_path.write_text(
        REPLIES.format(reply_id="shipping-policy")
        + '  - {id: anything-else, title: More?, text: {el: "Κάτι άλλο;"}}\n',
        "utf-8",
    )
    new = await config.replies_watcher.check()
    assert new is not None
    assert [reply.id for reply in config.replies.replies] == ["shipping-policy", "anything-else"]
    assert config.metric("casewire_router_saved_replies_reloads_total") == 1

    config.replies_path.write_text("replies:\n  - {id: x, title: X, text: {en: '{oops'}}\n")
    assert await config.replies_watcher.check() is None
    assert await config.replies_watcher.check() is None  # reported once
    assert config.replies is new
    assert config.metric("casewire_router_saved_replies_reload_failures_total") == 1


async def test_a_saved_replies_file_dropping_a_reply_the_rules_name_stays_out(
    tmp_path: Path,
) -> None:
    config = Configuration(tmp_path)
    before = config.replies
    config.replies_path.write_text(REPLIES.format(reply_id="renamed-policy"), "utf-8")
    assert await config.replies_watcher.check() is None
    assert config.replies is before
    assert config.metric("casewire_router_saved_replies_reload_failures_total") == 1


async def test_rules_naming_a_reply_the_saved_replies_lack_stay_out(tmp_path: Path) -> None:
    config = Configuration(tmp_path)
    before = config.rules
    config.rules_path.write_text(RULES.format(template="refund-policy"), "utf-8")
    assert await config.rules_watcher.check() is None
    assert config.rules is before
    assert config.metric("casewire_router_rules_reload_failures_total") == 1
    assert await config.rules_watcher.check() is None  # refused once, not re-read
    # Once the saved replies have it, the same rules file goes in force, unchanged.
    config.replies_path.write_text(
        REPLIES.format(reply_id="shipping-policy") + REPLIES.format(reply_id="refund-policy")[9:],
        "utf-8",
    )
    assert await config.replies_watcher.check() is not None
    assert await config.rules_watcher.check() is not None
    assert config.rules.spec.rules[0].then.reply_template == "refund-policy"
    assert config.metric("casewire_router_rules_reload_failures_total") == 1
