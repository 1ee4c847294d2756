"""The pure parts of the ingest benchmark: webhook bodies, signing, requests, the check of
what the broker holds."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from casewire_dev import bench, bench_ingest
from casewire_dev.results import BenchError
from casewire_ingest.domain.platforms import normalize
from casewire_ingest.domain.signatures import hex_signature_valid

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def templates(shared_data: Path) -> bench_ingest.Templates:
    return bench_ingest.read_templates(shared_data)


def test_every_webhook_is_a_new_customer_message_that_ingest_normalizes(
    templates: bench_ingest.Templates,
) -> None:
    texts = ["My order never arrived @AmazonHelp", "Καλησπέρα, δεν λειτουργεί", "ok"]

    webhooks = bench_ingest.build_webhooks(templates, texts, 300, seed=3, now=NOW)

    assert len({webhook.message_id for webhook in webhooks}) == 300
    assert {webhook.kind for webhook in webhooks} == {"messenger", "instagram", "whatsapp"}
    for webhook in webhooks:
        normalized = normalize(json.loads(webhook.body), NOW)
        assert len(normalized.messages) == 1
        message = normalized.messages[0]
        assert message.platform == bench_ingest.PLATFORM_OF[webhook.kind]
        assert message.platform_message_id == webhook.message_id
        assert (message.channel, message.direction, message.event) == ("dm", "inbound", "message")
        assert message.text in texts
        assert message.account_id in {
            bench_ingest.PAGE_ID,
            bench_ingest.INSTAGRAM_ID,
            bench_ingest.PHONE_NUMBER_ID,
        }


def test_the_same_seed_gives_the_same_bytes(templates: bench_ingest.Templates) -> None:
    first = bench_ingest.build_webhooks(templates, ["a", "b"], 20, seed=5, now=NOW)
    again = bench_ingest.build_webhooks(templates, ["a", "b"], 20, seed=5, now=NOW)
    other = bench_ingest.build_webhooks(templates, ["a", "b"], 20, seed=6, now=NOW)

    assert first == again
    assert first != other


def test_bodies_are_compact_ascii_json_as_meta_sends_them() -> None:
    body = bench_ingest.encode_body({"object": "page", "text": "ขอบคุณ é"})

    assert body == b'{"object":"page","text":"\\u0e02\\u0e2d\\u0e1a\\u0e04\\u0e38\\u0e13 \\u00e9"}'


def test_a_signed_request_is_a_complete_post_that_ingest_verifies() -> None:
    body = b'{"object":"page","entry":[]}'

    request = bench_ingest.signed_request(body, secret="s3cret")

    head, _, sent = request.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert lines[0] == "POST /v1/webhooks/meta HTTP/1.1"
    assert sent == body
    assert headers["Content-Length"] == str(len(body))
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
    assert hex_signature_valid(["s3cret"], body, headers["X-Hub-Signature-256"])
    assert not hex_signature_valid(["other"], body, headers["X-Hub-Signature-256"])
    assert not hex_signature_valid(["s3cret"], body + b" ", headers["X-Hub-Signature-256"])


def test_only_selects_one_benchmark(tmp_path: Path) -> None:
    assert bench.parse_options(["--output", str(tmp_path / "r.json")]).only is None
    assert bench.parse_options(["--only", "ingest"]).only == "ingest"
    with pytest.raises(SystemExit):
        bench.parse_options(["--only", "nope"])


def test_each_record_of_the_run_must_be_written_once_and_be_of_a_sent_request() -> None:
    index = {"a": 0, "b": 1, "c": 2}

    assert bench_ingest.check_written_once("t", ["b", "a"], index, sent=2) == 2
    with pytest.raises(BenchError, match="twice"):
        bench_ingest.check_written_once("t", ["a", "b", "a"], index, sent=2)
    with pytest.raises(BenchError, match="never sent"):
        bench_ingest.check_written_once("t", ["a", "c"], index, sent=2)
