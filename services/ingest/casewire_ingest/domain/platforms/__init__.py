"""Platform normalizers: one webhook body in, canonical messages out.

Each platform module exposes `normalize(body, received_at) -> Normalized`. It raises
NormalizationError (with a reason code) for a body whose envelope it cannot accept, and records
each batched item it cannot read in `Normalized.rejected`, keeping the others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from casewire_ingest.domain.normalized import NormalizationError, Normalized

WebhookPlatform = Literal["facebook", "instagram", "whatsapp", "x"]
WEBHOOK_PLATFORMS: tuple[WebhookPlatform, ...] = ("facebook", "instagram", "whatsapp", "x")

_META_OBJECTS: dict[str, WebhookPlatform] = {
    "page": "facebook",
    "instagram": "instagram",
    "whatsapp_business_account": "whatsapp",
}
_X_EVENT_KEYS = ("tweet_create_events", "direct_message_events", "for_user_id")


def detect_platform(body: Any) -> WebhookPlatform:
    """The platform a webhook body comes from, by its shape."""
    if not isinstance(body, dict):
        raise NormalizationError("not_an_object", "a webhook body is a JSON object")
    meta_object = body.get("object")
    if isinstance(meta_object, str):
        if meta_object in _META_OBJECTS:
            return _META_OBJECTS[meta_object]
        raise NormalizationError("unknown_object", f"object {meta_object!r} is not supported")
    if any(key in body for key in _X_EVENT_KEYS) or any(key.endswith("_events") for key in body):
        return "x"
    raise NormalizationError("unknown_platform", "the body's shape matches no supported platform")


def normalizer(platform: WebhookPlatform) -> Callable[[dict[str, Any], datetime], Normalized]:
    from casewire_ingest.domain.platforms import meta, whatsapp, x

    return {
        "facebook": meta.normalize_page,
        "instagram": meta.normalize_instagram,
        "whatsapp": whatsapp.normalize,
        "x": x.normalize,
    }[platform]


def normalize(
    body: Any, received_at: datetime, platform: WebhookPlatform | None = None
) -> Normalized:
    """Detect (or check) the platform, then normalize the body."""
    detected = detect_platform(body)
    if platform is not None and detected != platform:
        raise NormalizationError(
            "wrong_platform", f"the body is a {detected} webhook, not {platform}"
        )
    return normalizer(detected)(body, received_at)
