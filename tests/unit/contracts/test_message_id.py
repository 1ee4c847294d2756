"""Canonical message ids are uuid5(NAMESPACE_URL, "platform:platform_message_id") (DESIGN.md):
`message_id` computes them without a UUID object, and must give exactly uuid5's ids."""

from __future__ import annotations

import uuid

import pytest
from casewire_common.messages import message_id
from hypothesis import given
from hypothesis import strategies as st

PLATFORM_IDS = [
    ("x", "1234567890123456789"),
    ("facebook", "123_456"),
    ("instagram", "aWdfMTIzNDU2Nzg5"),
    ("whatsapp", "wamid.HBgLMTIzNDU2Nzg5MBUCABIYFjNFQjA="),
    ("other", "ελληνικά:ไทย:عربي:😀"),  # non-ASCII ids hash as UTF-8
    ("x", "0"),
    ("other", "x" * 512),
]


@pytest.mark.parametrize(("platform", "platform_message_id"), PLATFORM_IDS)
def test_message_id_is_uuid5_of_platform_and_id(platform: str, platform_message_id: str) -> None:
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"{platform}:{platform_message_id}")

    assert message_id(platform, platform_message_id) == str(expected)
    assert uuid.UUID(message_id(platform, platform_message_id)).version == 5


@given(
    platform=st.sampled_from(["x", "facebook", "instagram", "whatsapp", "other"]), text=st.text()
)
def test_message_id_matches_uuid5_for_any_id(platform: str, text: str) -> None:
    assert message_id(platform, text) == str(uuid.uuid5(uuid.NAMESPACE_URL, f"{platform}:{text}"))
