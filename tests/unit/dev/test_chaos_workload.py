"""The chaos workload: a deterministic plan of real webhook bodies that ingest reads as the
messages the plan says, signed as ingest checks, with every kind of traffic the oracle needs."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from casewire_dev.chaos import faults, workload
from casewire_ingest.domain.generic import normalize_generic
from casewire_ingest.domain.normalized import NormalizationError, Normalized
from casewire_ingest.domain.platforms import normalize
from casewire_ingest.domain.signatures import hex_signature_valid, x_signature_valid

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 12, 6, 3, 0, 0, 123456, tzinfo=UTC)
TARGET = 20.0


@pytest.fixture(scope="module")
def texts(shared_data: Path) -> workload.Texts:
    return workload.read_texts(shared_data, ROOT)


@pytest.fixture(scope="module")
def plan(texts: workload.Texts) -> workload.Plan:
    return workload.build_plan(
        workload.PlanOptions(messages=2000, seed=11, first_response_seconds=TARGET), texts
    )


def _normalized(post: workload.PlannedPost, rendered: workload.Rendered) -> Normalized:
    document = json.loads(rendered.body)
    if post.endpoint == "generic":
        return normalize_generic(document, NOW + timedelta(seconds=1))
    return normalize(document, NOW + timedelta(seconds=1))


def _is_whatsapp_status(post: workload.PlannedPost) -> bool:
    changes = post.body.get("entry", [{}])[0].get("changes", [{}])
    return "statuses" in changes[0].get("value", {})


def test_the_same_seed_gives_the_same_plan_and_another_seed_another(
    texts: workload.Texts, plan: workload.Plan
) -> None:
    options = workload.PlanOptions(messages=2000, seed=11, first_response_seconds=TARGET)
    assert workload.build_plan(options, texts).posts == plan.posts
    other = workload.PlanOptions(messages=2000, seed=12, first_response_seconds=TARGET)
    assert workload.build_plan(other, texts).posts != plan.posts


def test_the_plan_holds_about_the_messages_asked_for_in_posting_order(
    plan: workload.Plan,
) -> None:
    assert 2000 <= len(plan.messages) < 2020
    times = [post.at for post in plan.posts]
    assert times == sorted(times)
    assert times[0] >= 0


def test_every_good_post_is_read_by_ingest_as_exactly_its_planned_messages(
    plan: workload.Plan,
) -> None:
    checked = 0
    for post in plan.posts:
        if post.expected_rejection not in (None, "invalid_item") or _is_whatsapp_status(post):
            continue  # statuses: ingest's job (a reply made outside Casewire), not the plan's
        rendered = workload.render(post, NOW)
        normalized = _normalized(post, rendered)
        got = [(m.id, m.direction, m.event, m.sent_at) for m in normalized.messages]
        want = [(m.message_id, m.direction, m.event, rendered.sent_at) for m in post.messages]
        assert got == want, post
        assert bool(normalized.rejected) == (post.expected_rejection == "invalid_item")
        checked += 1
    assert checked > 1900


def test_sent_at_is_the_instant_of_posting_at_the_platforms_precision(
    plan: workload.Plan,
) -> None:
    precisions = {workload.render(post, NOW).sent_at.microsecond for post in plan.posts}
    assert precisions == {0, 123000}  # WhatsApp and the Page feed say seconds, others ms


def test_posts_are_signed_with_the_secrets_ingest_is_configured_with(
    plan: workload.Plan,
) -> None:
    settings = workload.ingest_settings()
    meta_secret = json.loads(settings["CASEWIRE_META_APPS"])[0]["app_secret"]
    x_secret = json.loads(settings["CASEWIRE_X_APPS"])[0]["consumer_secret"]
    [integration] = json.loads(settings["CASEWIRE_INTEGRATIONS"])
    for post in plan.posts:
        rendered = workload.render(post, NOW)
        if post.endpoint == "generic":
            header = rendered.headers.get("X-Casewire-Signature")
            valid = hex_signature_valid(integration["secrets"], rendered.body, header)
            named = rendered.headers.get("X-Casewire-Integration")
            assert named == (None if post.signing == "missing" else integration["name"])
        elif post.endpoint == "x":
            header = rendered.headers.get("x-twitter-webhooks-signature")
            valid = x_signature_valid([x_secret], rendered.body, header)
        else:
            header = rendered.headers.get("x-hub-signature-256")
            valid = hex_signature_valid([meta_secret], rendered.body, header)
        assert valid == (post.signing == "valid"), post
        assert (header is None) == (post.signing == "missing")


def test_every_bad_input_is_refused_for_the_reason_it_was_made_for(plan: workload.Plan) -> None:
    refused: dict[str, int] = {}
    for post in plan.posts:
        if post.expected_rejection is None or post.signing != "valid":
            continue
        rendered = workload.render(post, NOW)
        try:
            normalized = _normalized(post, rendered)
        except (NormalizationError, ValueError) as error:
            reason = getattr(error, "reason", "malformed_json")
        else:
            reason = "invalid_item" if normalized.rejected else "accepted"
        refused[reason] = refused.get(reason, 0) + 1
    assert plan.expected_rejections() == {
        **refused,
        "bad_signature": 1,
        "missing_signature": 1,
        "missing_credentials": 1,
    }
    assert set(refused) == {"invalid_item", "malformed_json", "unknown_object", "invalid_message"}


def test_the_plan_covers_every_platform_event_language_and_direction(plan: workload.Plan) -> None:
    messages = plan.messages
    assert {m.platform for m in messages} == {"x", "facebook", "instagram", "whatsapp", "other"}
    assert {m.event for m in messages} == {"message", "edit", "delete"}
    assert {m.language for m in messages if m.direction == "inbound"} >= {"en", "ar", "el", "th"}
    assert {m.direction for m in messages} == {"inbound", "outbound"}
    assert {post.endpoint for post in plan.posts} == {"meta", "whatsapp", "x", "generic"}


def test_hops_of_an_x_reply_chain_have_different_conversation_keys(plan: workload.Plan) -> None:
    keys: defaultdict[str, set[str]] = defaultdict(set)
    for post in plan.posts:
        if post.messages and post.messages[0].thread.startswith("corpus-"):
            for message in _normalized(post, workload.render(post, NOW)).messages:
                keys[post.messages[0].thread].add(message.conversation_id)
    assert sum(1 for conversation_keys in keys.values() if len(conversation_keys) >= 3) > 30


def test_one_customer_writes_in_public_and_in_private_in_one_thread(plan: workload.Plan) -> None:
    channels: defaultdict[str, set[str]] = defaultdict(set)
    for post in plan.posts:
        if post.messages and post.messages[0].thread.startswith("x-merge-"):
            for message in _normalized(post, workload.render(post, NOW)).messages:
                if message.direction == "inbound":
                    channels[post.messages[0].thread].add(message.visibility)
    assert channels
    assert all(visibilities == {"public", "private"} for visibilities in channels.values())


def test_a_crisis_burst_of_many_customers_falls_within_a_minute(plan: workload.Plan) -> None:
    crisis = [
        post for post in plan.posts if post.messages[0:1] and "crisis-" in post.messages[0].thread
    ]
    openings = {post.messages[0].thread: post.at for post in reversed(crisis)}
    assert len(openings) >= 10
    assert max(openings.values()) - min(openings.values()) <= 60


def test_praise_is_planned_as_needing_no_case(plan: workload.Plan) -> None:
    praise = [m for m in plan.messages if m.thread.startswith("praise-")]
    assert praise
    assert not any(m.needs_case for m in praise)
    assert all(
        m.needs_case
        for m in plan.messages
        if m.thread.startswith("whatsapp-") and m.direction == "inbound" and m.event == "message"
    )


def test_first_replies_come_before_after_and_within_seconds_of_the_deadline(
    plan: workload.Plan,
) -> None:
    opened: dict[str, float] = {}
    first_reply: dict[str, float] = {}
    for post in plan.posts:
        for message in post.messages:
            if message.direction == "inbound" and message.needs_case:
                opened.setdefault(message.thread, post.at)
            elif message.direction == "outbound" and message.thread in opened:
                first_reply.setdefault(message.thread, post.at - opened[message.thread])
    offsets = list(first_reply.values())
    outcomes = Counter(
        "near" if abs(offset - TARGET) <= 3 else "before" if offset < TARGET else "after"
        for offset in offsets
    )
    assert min(outcomes["near"], outcomes["before"], outcomes["after"]) >= 50
    assert len(opened) - len(first_reply) >= 50  # never answered


def test_faults_are_scheduled_over_the_run_and_unknown_ones_refused() -> None:
    planned = faults.schedule(["kill-router", "freeze-router"], 100.0)
    assert [(round(f.at), f.name) for f in planned] == [
        (20, "kill-router"),
        (42, "freeze-router"),
        (62, "kill-router"),
    ]
    with pytest.raises(ValueError, match="kill-everything"):
        faults.schedule(["kill-everything"], 100.0)


def test_takeover_is_when_every_partition_moved_again() -> None:
    sampler = faults.OffsetSampler("unused:9092", "group")
    sampler.samples = [
        (10.0, {0: 5, 1: 7}),
        (10.5, {0: 6, 1: 7}),
        (13.0, {0: 6, 1: 7}),
        (14.5, {0: 9, 1: 8}),
    ]
    assert sampler.resumed_after(10.2) == pytest.approx(4.3)
    assert sampler.resumed_after(14.6) is None
    assert sampler.resumed_after(9.0) is None
