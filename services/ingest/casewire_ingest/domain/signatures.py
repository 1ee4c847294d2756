"""Webhook authenticity: HMAC signatures over the raw request bytes, and the platforms'
subscription handshakes. Always checked before the body is parsed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.digest(secret.encode(), message, hashlib.sha256)


def hex_signature_valid(secrets: Iterable[str], raw_body: bytes, header: str | None) -> bool:
    """`sha256=<hex>` of the raw body, checked against each secret (several apps, or the old
    and new secret while rotating): Meta's and WhatsApp's `X-Hub-Signature-256`, and the
    generic channel's `X-Casewire-Signature`."""
    if not header or not header.startswith("sha256="):
        return False
    given = header.removeprefix("sha256=").strip().lower()
    return any(
        hmac.compare_digest(_hmac_sha256(secret, raw_body).hex(), given) for secret in secrets
    )


def x_signature_valid(secrets: Iterable[str], raw_body: bytes, header: str | None) -> bool:
    """`x-twitter-webhooks-signature: sha256=<base64>` over the raw body."""
    if not header or not header.startswith("sha256="):
        return False
    given = header.removeprefix("sha256=").strip()
    return any(
        hmac.compare_digest(base64.b64encode(_hmac_sha256(secret, raw_body)).decode(), given)
        for secret in secrets
    )


def token_sha256(token: str) -> str:
    """What a bearer token is known by: the hex SHA-256 of it (`printf %s TOKEN | sha256sum`).
    A token is long and random, so a plain hash is enough; only the hash is configured."""
    return hashlib.sha256(token.encode()).hexdigest()


def x_crc_response(secret: str, crc_token: str) -> str:
    """The `response_token` answering X's CRC check; `crc_token` is the URL-decoded value."""
    digest = _hmac_sha256(secret, crc_token.encode())
    return "sha256=" + base64.b64encode(digest).decode()


def meta_handshake(
    verify_tokens: Iterable[str], mode: str | None, token: str | None, challenge: str | None
) -> str | None:
    """The challenge to echo when Meta's subscription handshake is genuine, else None."""
    if mode != "subscribe" or not token or challenge is None:
        return None
    if any(hmac.compare_digest(token.encode(), known.encode()) for known in verify_tokens):
        return challenge
    return None
