"""Hostile request bodies, as raw bytes (most are not representable as Python JSON values):
deep nesting, huge numbers, NaN and Infinity, duplicate keys, invalid UTF-8 and lone
surrogates, control and bidi characters, very long strings, very many items; alone or put
in the place of a field of a body that is otherwise what each endpoint expects. Shared by the
in-process fuzz test and the hostile-input suite against a running ingest."""

from __future__ import annotations

import json
from typing import Literal

from hypothesis import strategies as st

Endpoint = Literal["meta", "whatsapp", "x", "generic"]
ENDPOINTS: tuple[Endpoint, ...] = ("meta", "whatsapp", "x", "generic")
PATHS: dict[Endpoint, str] = {
    "meta": "/v1/webhooks/meta",
    "whatsapp": "/v1/webhooks/whatsapp",
    "x": "/v1/webhooks/x",
    "generic": "/v1/messages",
}

HOLE = b"@HOLE@"

# Bodies each endpoint takes, with one field replaced by HOLE (a JSON value goes there).
TEMPLATES: dict[Endpoint, list[bytes]] = {
    "meta": [
        b'{"object":"page","entry":[{"id":"104512639872345","time":1764000000000,"messaging":[{'
        b'"sender":{"id":"6001"},"recipient":{"id":"104512639872345"},"timestamp":'
        + HOLE
        + b',"message":{"mid":"m_1","text":"hello"}}]}]}',
        b'{"object":"page","entry":[{"id":"104512639872345","time":1764000000000,"messaging":[{'
        b'"sender":{"id":"6001"},"recipient":{"id":"104512639872345"},"timestamp":1764000000000,'
        b'"message":{"mid":"m_2","text":' + HOLE + b"}}]}]}",
        b'{"object":"instagram","entry":[{"id":"17841405309211844","time":1764000000,"changes":'
        b'[{"field":"comments","value":{"id":' + HOLE + b',"text":"hi","from":{"id":"1",'
        b'"username":"u"},"media":{"id":"m"}}}]}]}',
        b'{"object":"page","entry":' + HOLE + b"}",
    ],
    "whatsapp": [
        b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{'
        b'"field":"messages","value":{"messaging_product":"whatsapp","metadata":{'
        b'"display_phone_number":"15550783881","phone_number_id":"106540352242922"},'
        b'"contacts":[{"profile":{"name":"N"},"wa_id":"16505551234"}],"messages":[{'
        b'"from":"16505551234","id":"wamid.1","timestamp":'
        + HOLE
        + b',"type":"text","text":{"body":"hi"}}]}}]}]}',
        b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{'
        b'"field":"messages","value":{"messaging_product":"whatsapp","metadata":{'
        b'"display_phone_number":"15550783881","phone_number_id":"106540352242922"},'
        b'"messages":' + HOLE + b"}}]}]}",
    ],
    "x": [
        b'{"for_user_id":"2244994945","tweet_create_events":[{"created_at":'
        + HOLE
        + b',"id_str":"1","text":"@brand hi","user":{"id_str":"9","screen_name":"c"}}]}',
        b'{"for_user_id":"2244994945","tweet_create_events":[{"created_at":'
        b'"Fri Dec 13 04:48:09 +0000 2019","id_str":"2","text":'
        + HOLE
        + b',"user":{"id_str":"9","screen_name":"c"}}]}',
        b'{"for_user_id":' + HOLE + b',"direct_message_events":[]}',
    ],
    "generic": [
        b'{"channel":"dm","direction":"inbound","account_id":"brand","platform_message_id":"p1",'
        b'"conversation_id":"other:brand:c","author":{"id":"c"},"sent_at":' + HOLE + b"}",
        b'{"channel":"dm","direction":"inbound","account_id":"brand","platform_message_id":"p2",'
        b'"conversation_id":"other:brand:c","author":{"id":"c"},"text":'
        + HOLE
        + b',"sent_at":"2026-12-01T10:00:00Z"}',
        b'{"channel":"dm","direction":"inbound","account_id":'
        + HOLE
        + b',"platform_message_id":"p3","conversation_id":"other:brand:c","author":{"id":"c"},'
        b'"sent_at":"2026-12-01T10:00:00Z"}',
    ],
}


def nested(depth: int, as_object: bool) -> bytes:
    if as_object:
        return b'{"a":' * depth + b"0" + b"}" * depth
    return b"[" * depth + b"]" * depth


# Control and bidirectional formatting characters (escaped and raw where JSON allows).
_TRICKY_CHARACTERS = (
    "\u0000\u0007\u001b\u007f\u0085\u200b\u200e\u200f\u202a\u202e\u2066\u2069\ufeff\ufffe"
)

deep = st.builds(nested, st.integers(min_value=60, max_value=150_000), st.booleans())
huge_numbers = st.integers(min_value=19, max_value=20_000).map(
    lambda n: b"9" * n
) | st.sampled_from(
    [b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"1e-400", b"-0",
     b"18446744073709551616", b"0." + b"0" * 5000 + b"1", b"9" * 400 + b".5"]
)  # fmt: skip
broken_strings = st.sampled_from(
    [b'"\\ud800"', b'"\\udfff"', b'"\\udc00\\ud800"', b'"\xff\xfe"', b'"\xc3"', b'"\xed\xa0\x80"',
     b'"\xf4\x90\x80\x80"', b'"a\x00b"', b'"\\u12"', b'"unterminated']
)  # fmt: skip
tricky_strings = st.text(
    # Surrogates have no UTF-8 form: they come as escapes, in `broken_strings`.
    alphabet=st.sampled_from(_TRICKY_CHARACTERS) | st.characters(exclude_categories=["Cs"]),
    max_size=200,
).map(lambda text: json.dumps(text, ensure_ascii=False).encode())
long_strings = st.integers(min_value=70_000, max_value=900_000).map(
    lambda n: b'"' + "ب".encode() * (n // 2) + b'"'
)
many_items = st.builds(
    lambda n, item: b"[" + b",".join([item] * n) + b"]",
    st.integers(min_value=1_000, max_value=300_000),
    st.sampled_from([b"0", b"{}", b"[]", b'""', b"null"]),
)
duplicate_keys = st.sampled_from(
    [b'{"object":"page","object":"instagram","entry":[],"entry":{}}',
     b'{"for_user_id":"1","for_user_id":2,"tweet_create_events":[],"tweet_create_events":null}',
     b'{"channel":"dm","channel":"fax"}']
)  # fmt: skip
plain_values = st.sampled_from([b"null", b"true", b"0", b"-1", b'""', b"[]", b"{}", b'"now"'])

fragments = st.one_of(
    deep, huge_numbers, broken_strings, tricky_strings, long_strings, many_items, duplicate_keys,
    plain_values,
)  # fmt: skip


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[Endpoint, bytes]:
    """An endpoint and a body for it: a hostile fragment alone or in a field of its body."""
    endpoint = draw(st.sampled_from(ENDPOINTS))
    fragment = draw(fragments)
    if draw(st.booleans()):
        return endpoint, fragment
    template = draw(st.sampled_from(TEMPLATES[endpoint]))
    return endpoint, template.replace(HOLE, fragment)
