"""What `casewire-ingest replay` needs of a kept record, and what it refuses: the record must
say which endpoint took the body and when, and be younger than the deduplication memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from casewire_ingest.domain.archive import (
    KeptBody,
    Replayable,
    TimeRange,
    Unreplayable,
    replayable,
)
from casewire_ingest.main import oldest_remembered, replay_accounts
from casewire_ingest.settings import IngestSettings

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
REMEMBERED_SINCE = NOW - timedelta(days=14)


SOURCE, RECEIVED = "casewire-source", "casewire-received-at"


def kept(**headers: str) -> KeptBody:
    return KeptBody("casewire.raw.v1.dlq", 0, 7, headers, b"{}")


def test_a_record_says_its_endpoint_and_receipt_time() -> None:
    record = kept(**{SOURCE: "meta", RECEIVED: "2026-12-06T03:00:00+01:00"})

    assert replayable(record, TimeRange(), REMEMBERED_SINCE) == Replayable(
        "meta", datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({RECEIVED: "2026-12-06T02:00:00+00:00"}, "no_source"),
        (
            {SOURCE: "fax", RECEIVED: "2026-12-06T02:00:00Z"},
            "unknown_source",
        ),
        ({SOURCE: "x"}, "no_received_at"),
        ({SOURCE: "x", RECEIVED: "yesterday"}, "bad_received_at"),
        (
            {SOURCE: "x", RECEIVED: "2026-12-06T02:00:00"},
            "bad_received_at",
        ),
        ({SOURCE: "x", RECEIVED: "2026-11-01T00:00:00Z"}, "forgotten"),
    ],
)
def test_a_record_a_replay_cannot_trust_is_refused_with_a_reason(
    headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(Unreplayable) as refusal:
        replayable(kept(**headers), TimeRange(), REMEMBERED_SINCE)

    assert refusal.value.reason == reason
    assert "casewire.raw.v1.dlq/0/7" in refusal.value.detail


def test_a_record_received_outside_the_range_is_left_out_not_refused() -> None:
    received = TimeRange(since=NOW - timedelta(hours=1), until=NOW)
    record = kept(**{SOURCE: "x", RECEIVED: NOW.isoformat()})

    assert replayable(record, received, REMEMBERED_SINCE) is None  # until is exclusive
    record = kept(**{SOURCE: "x", RECEIVED: "2026-12-06T00:59:59Z"})
    assert replayable(record, received, REMEMBERED_SINCE) is None


def test_the_memory_horizon_keeps_an_hour_to_spare_for_the_trim() -> None:
    settings = IngestSettings(dedup_retention_days=14)

    assert oldest_remembered(settings, NOW) == NOW - timedelta(days=14) + timedelta(hours=1)


def test_replayed_bodies_may_speak_for_any_configured_apps_accounts() -> None:
    settings = IngestSettings(
        meta_apps=[
            {"app_secret": "a", "verify_token": "t", "accounts": ["page-1"]},
            {"app_secret": "b", "verify_token": "t", "accounts": ["waba-phone-2"]},
        ],
        x_apps=[{"consumer_secret": "c"}],  # lists none: any account
    )

    assert replay_accounts(settings) == {
        "meta": frozenset({"page-1", "waba-phone-2"}),
        "whatsapp": frozenset({"page-1", "waba-phone-2"}),
        "x": None,
    }
