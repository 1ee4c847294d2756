"""What the dev tools post to ingest as the platforms post it: the brand's accounts on them
and the signatures ingest checks (`casewire_ingest.domain.signatures`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Generator

import httpx

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


def casewire_signature(secret: str, body: bytes) -> str:
    """`X-Casewire-Signature` of the generic channel: as Meta's, `sha256=` and the hex HMAC."""
    return meta_signature(secret, body)


def integration_headers(name: str, secret: str, body: bytes) -> dict[str, str]:
    """The headers by which integration `name` signs a body for `POST /v1/messages`."""
    return {
        "X-Casewire-Integration": name,
        "X-Casewire-Signature": casewire_signature(secret, body),
    }


class IntegrationAuth(httpx.Auth):
    """httpx authentication signing every request body as the generic channel's integration
    `name` (extra headers on a platform webhook are ignored)."""

    requires_request_body = True

    def __init__(self, name: str, secret: str) -> None:
        self._name = name
        self._secret = secret

    def settings(self) -> str:
        """`CASEWIRE_INTEGRATIONS` for an ingest that accepts what this signs."""
        return json.dumps([{"name": self._name, "secrets": [self._secret]}])

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(integration_headers(self._name, self._secret, request.content))
        yield request
