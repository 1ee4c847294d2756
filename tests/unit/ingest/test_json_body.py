"""Bodies are read as strict JSON within limits: every way a body is not JSON we read is a
NormalizationError with its own reason, never an exception a 500 would come from."""

from __future__ import annotations

import pytest
from casewire_ingest.domain.json_body import JsonLimits, parse_json
from casewire_ingest.domain.normalized import NormalizationError

LIMITS = JsonLimits(max_depth=8, max_values=100)


def nested(depth: int, opening: bytes = b"[", closing: bytes = b"]") -> bytes:
    return opening * depth + closing * depth


def reason_for(raw: bytes, limits: JsonLimits = LIMITS) -> str:
    with pytest.raises(NormalizationError) as refused:
        parse_json(raw, limits)
    assert refused.value.detail
    return refused.value.reason


def test_a_body_within_the_limits_is_read_as_it_is() -> None:
    raw = '{"text": "مرحبا Γειά สวัสดี", "ids": [1, 2], "id": 1459991487970123456}'.encode()
    assert parse_json(raw, LIMITS) == {
        "text": "مرحبا Γειά สวัสดี",
        "ids": [1, 2],
        "id": 1459991487970123456,  # ids beyond 2**53 stay exact integers
    }


def test_nesting_is_limited_whatever_the_containers() -> None:
    assert parse_json(nested(8), LIMITS) == [[[[[[[[]]]]]]]]
    assert reason_for(nested(9)) == "too_deep"
    assert reason_for(b'{"a":' * 9 + b"1" + b"}" * 9) == "too_deep"
    # Far beyond any recursion limit: refused by the parser itself, with the same reason.
    assert reason_for(nested(100_000)) == "too_deep"
    assert reason_for(nested(100_000, b'{"a":', b"}")) == "too_deep"


def test_the_number_of_values_is_limited() -> None:
    assert len(parse_json(b"[" + b",".join([b"0"] * 99) + b"]", LIMITS)) == 99
    assert reason_for(b"[" + b",".join([b"0"] * 100) + b"]") == "too_many_values"
    assert reason_for(b'{"a": [' + b",".join([b"{}"] * 200) + b"]}") == "too_many_values"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"timestamp": ' + b"9" * 5000 + b"}",  # int() refuses it past 4,300 digits
        b'{"timestamp": 1e400}',
        b'{"timestamp": NaN}',
        b'{"timestamp": Infinity}',
        b'{"timestamp": -Infinity}',
        b'{"text": "\\ud800"}',  # a lone surrogate: no UTF-8 encoding exists
        b'{"text": "\\udc00\\ud800"}',
        b'{"text": "\xff\xfe"}',
        b'{"text": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8
        b'\xef\xbb\xbf{"a": 1}',
        b'{"text": "a\x00b"}',  # a raw control character inside a string
        b'{"a": 1',
        b"",
    ],
    ids=[
        "5000-digit-integer", "overflowing-float", "nan", "infinity", "minus-infinity",
        "lone-surrogate", "reversed-surrogates", "invalid-utf8", "utf8-encoded-surrogate",
        "byte-order-mark", "raw-control-character", "truncated", "empty",
    ],
)  # fmt: skip
def test_what_is_not_strict_json_is_malformed(raw: bytes) -> None:
    assert reason_for(raw) == "malformed_json"


def test_escaped_control_and_bidi_characters_are_text_like_any_other() -> None:
    text = "\u202eevil\u2066 \u0000 \u200f"
    assert parse_json(b'{"text": "\\u202eevil\\u2066 \\u0000 \\u200f"}', LIMITS) == {"text": text}


def test_a_duplicate_key_keeps_its_last_value_as_every_json_parser_here_does() -> None:
    assert parse_json(b'{"object": "page", "object": "instagram"}', LIMITS) == {
        "object": "instagram"
    }


def test_a_scalar_document_is_read_and_left_to_the_normalizer() -> None:
    assert parse_json(b'"just a string"', LIMITS) == "just a string"
