"""Which `sent_at` is trusted: a time after its receipt (beyond the skew) or before its
platform existed is refused from an integration and replaced (and flagged) from a platform."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from casewire_common.messages import Author, CanonicalMessage, Platform, message_id
from casewire_ingest.domain.event_time import PLATFORM_LAUNCH, settle_event_times
from casewire_ingest.domain.normalized import NormalizationError, Normalized

RECEIVED_AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def message(sent_at: datetime, platform: Platform = "x", pid: str = "1") -> CanonicalMessage:
    return CanonicalMessage(
        id=message_id(platform, pid),
        platform=platform,
        channel="dm",
        visibility="private",
        direction="inbound",
        account_id="brand",
        platform_message_id=pid,
        conversation_id=f"{platform}:brand:customer",
        author=Author(id="customer"),
        text="Πού είναι η παραγγελία μου;",
        sent_at=sent_at,
        received_at=RECEIVED_AT,
    )


@pytest.mark.parametrize(
    "sent_at",
    [
        RECEIVED_AT,
        RECEIVED_AT + SKEW,  # a platform clock a little ahead
        RECEIVED_AT - timedelta(days=3 * 365),  # an old message, delivered late
        PLATFORM_LAUNCH["x"],
    ],
)
def test_plausible_times_are_kept_as_sent(sent_at: datetime) -> None:
    body = Normalized(messages=[message(sent_at)])
    for refuse in (False, True):
        settled = settle_event_times(body, SKEW, refuse=refuse)
        assert [m.sent_at for m in settled.messages] == [sent_at]
        assert settled.time_adjusted == set()


@pytest.mark.parametrize(
    ("sent_at", "platform"),
    [
        (RECEIVED_AT + SKEW + timedelta(seconds=1), "x"),
        (datetime(9999, 12, 31, tzinfo=UTC), "whatsapp"),
        (PLATFORM_LAUNCH["instagram"] - timedelta(days=1), "instagram"),
        (datetime(1970, 1, 1, tzinfo=UTC), "facebook"),
    ],
)
def test_a_platform_time_that_cannot_be_true_becomes_the_receipt_time_and_is_flagged(
    sent_at: datetime, platform: Platform
) -> None:
    good = message(RECEIVED_AT - timedelta(minutes=1), platform, "good")
    bad = message(sent_at, platform, "bad")
    settled = settle_event_times(Normalized(messages=[good, bad]), SKEW, refuse=False)
    assert [m.sent_at for m in settled.messages] == [good.sent_at, RECEIVED_AT]
    assert settled.time_adjusted == {settled.messages[1].delivery_key}


def test_an_integration_time_that_cannot_be_true_refuses_the_body() -> None:
    future = message(datetime(9999, 12, 31, tzinfo=UTC), "other")
    with pytest.raises(NormalizationError) as refused:
        settle_event_times(Normalized(messages=[future]), SKEW, refuse=True)
    assert refused.value.reason == "implausible_sent_at"
    assert "300 s after its receipt" in refused.value.detail
    ancient = message(datetime(1980, 1, 1, tzinfo=UTC), "other")
    with pytest.raises(NormalizationError, match="before other existed"):
        settle_event_times(Normalized(messages=[ancient]), SKEW, refuse=True)
