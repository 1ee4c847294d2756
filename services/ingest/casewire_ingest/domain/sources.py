"""The sources ingest takes bodies from (its message-carrying endpoints), each with the
normalizer that reads its bodies. The HTTP endpoints and the replay of kept bodies (which
names a body's source in its `casewire-source` header) read a body the same way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from casewire_ingest.domain.generic import normalize_generic
from casewire_ingest.domain.json_body import JsonLimits
from casewire_ingest.domain.normalized import NormalizationError, Normalized
from casewire_ingest.domain.platforms import WebhookPlatform, detect_platform, normalize

Normalizer = Callable[[Any, datetime], Normalized]
Source = Literal["meta", "whatsapp", "x", "generic"]


def webhook_normalizer(*platforms: WebhookPlatform) -> Normalizer:
    """Normalize a body that must come from one of `platforms` (one Meta app may subscribe
    Pages, Instagram accounts and WhatsApp numbers to the same callback URL)."""

    def run(document: Any, received_at: datetime) -> Normalized:
        detected = detect_platform(document)
        if detected not in platforms:
            raise NormalizationError(
                "wrong_platform", f"a {detected} body sent to the {'/'.join(platforms)} webhook"
            )
        return normalize(document, received_at, detected)

    return run


SOURCE_NORMALIZERS: dict[Source, Normalizer] = {
    "meta": webhook_normalizer("facebook", "instagram", "whatsapp"),
    "whatsapp": webhook_normalizer("whatsapp"),
    "x": webhook_normalizer("x"),
    "generic": normalize_generic,
}

# Sources whose times come from a caller's clock, not a platform's: an implausible `sent_at`
# is refused there (the integration can send it again, right), and adjusted elsewhere.
CALLER_CLOCK_SOURCES: frozenset[Source] = frozenset({"generic"})


@dataclass(frozen=True)
class ReadingRules:
    """The limits every body is read within, whichever path brings it (HTTP, replay, the
    `normalize` CLI)."""

    json: JsonLimits = field(default_factory=JsonLimits)
    max_clock_skew: timedelta = timedelta(minutes=5)
