"""What the dev tools post to ingest as the platforms post it: the brand's accounts on them
and the signatures ingest checks (`casewire_ingest.domain.signatures`)."""

from __future__ import annotations

import base64
import hashlib
import hmac

# The brand's accounts: one Page, one Instagram account, one WhatsApp number.
PAGE_ID = "104512639872345"
INSTAGRAM_ID = "17841405309211844"
WABA_ID = "102290129340398"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550783881"


def meta_signature(secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256`: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def x_signature(secret: str, body: bytes) -> str:
    """`X-Twitter-Webhooks-Signature`: `sha256=` and the base64 HMAC-SHA256 of the raw body."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode()
