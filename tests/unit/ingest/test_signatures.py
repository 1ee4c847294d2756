"""The signature and handshake vectors of ../shared/data/payloads/signatures verify, and
tampered copies fail."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from casewire_ingest.domain.signatures import (
    hex_signature_valid,
    meta_handshake,
    x_crc_response,
    x_signature_valid,
)


def vector(shared_data: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (shared_data / "payloads" / "signatures" / name).read_text("utf-8")
    )
    return document


def tampered(body: bytes) -> list[bytes]:
    """A flipped byte, a re-serialized copy, and a body with a trailing newline."""
    flipped = bytearray(body)
    flipped[len(flipped) // 2] ^= 0x01
    variants = [bytes(flipped), body + b"\n"]
    with contextlib.suppress(ValueError):
        variants.append(json.dumps(json.loads(body), indent=2).encode())
    return variants


def test_meta_signature_vector_verifies_over_the_raw_file_bytes(shared_data: Path) -> None:
    meta = vector(shared_data, "meta_x_hub_signature_256_pywa.json")
    raw_file = shared_data / "payloads" / "signatures" / meta["raw_body_file"]
    raw = raw_file.resolve().read_bytes()
    assert raw == meta["raw_body_utf8"].encode()
    assert hex_signature_valid([meta["app_secret"]], raw, meta["header_value"])
    assert hex_signature_valid(["other-secret", meta["app_secret"]], raw, meta["header_value"])


def test_meta_signature_fails_on_tampered_body_wrong_secret_or_malformed_header(
    shared_data: Path,
) -> None:
    meta = vector(shared_data, "meta_x_hub_signature_256_pywa.json")
    raw = meta["raw_body_utf8"].encode()
    for body in tampered(raw):
        assert not hex_signature_valid([meta["app_secret"]], body, meta["header_value"])
    assert not hex_signature_valid(["wrong"], raw, meta["header_value"])
    assert not hex_signature_valid([meta["app_secret"]], raw, None)
    assert not hex_signature_valid([meta["app_secret"]], raw, meta["header_value"][7:])
    assert not hex_signature_valid([meta["app_secret"]], raw, "sha1=" + meta["header_value"][7:])
    assert not hex_signature_valid([], raw, meta["header_value"])


def test_x_signature_vectors_verify_and_tampered_copies_fail(shared_data: Path) -> None:
    x = vector(shared_data, "twitter_x_twitter_webhooks_signature_zammad.json")
    secret = x["consumer_secret"]
    assert len(x["vectors"]) == 4
    for case in x["vectors"]:
        if "payload_raw_body_file" in case:
            path = shared_data / "payloads" / "signatures" / case["payload_raw_body_file"]
            raw = path.resolve().read_bytes()
        else:
            raw = case["raw_body_utf8"].encode()
        assert x_signature_valid([secret], raw, case["header_value"]), case
        for body in tampered(raw):
            assert not x_signature_valid([secret], body, case["header_value"])
        assert not x_signature_valid(["not-" + secret], raw, case["header_value"])


def test_x_crc_answer_uses_the_url_decoded_token(shared_data: Path) -> None:
    crc = vector(shared_data, "twitter_crc_courier.json")
    token = parse_qs(crc["request_query"])["crc_token"][0]
    assert token == crc["crc_token_after_url_decoding"]
    assert x_crc_response(crc["consumer_secret"], token) == crc["expected_response_token"]
    undecoded = crc["request_query"].split("=", 1)[1]
    assert x_crc_response(crc["consumer_secret"], undecoded) == crc["wrong_if_not_url_decoded"]


@pytest.mark.parametrize("index", range(4))
def test_meta_handshake_vectors(shared_data: Path, index: int) -> None:
    handshake = vector(shared_data, "meta_get_verification_handshake.json")
    case = handshake["vectors"][index]
    query = {key: values[0] for key, values in parse_qs(case["query"]).items()}
    answer = meta_handshake(
        [case.get("configured_verify_token", "fb_webhook_secret")],
        query.get("hub.mode"),
        query.get("hub.verify_token"),
        query.get("hub.challenge"),
    )
    assert answer == case.get("expected_body")
