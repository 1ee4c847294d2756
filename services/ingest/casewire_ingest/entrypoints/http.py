"""HTTP entrypoints of ingest: platform webhooks (verified over the raw bytes) and the generic
channel. Every refusal is a 4xx with a reason code; no stack trace ever reaches a caller."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.domain.generic import normalize_generic
from casewire_ingest.domain.normalized import NormalizationError, Normalized
from casewire_ingest.domain.platforms import WebhookPlatform, detect_platform, normalize
from casewire_ingest.domain.signatures import (
    meta_handshake,
    meta_signature_valid,
    x_crc_response,
    x_signature_valid,
)
from casewire_ingest.service import Normalizer, Rejected, Unavailable, WebhookIngest
from casewire_ingest.settings import IngestSettings, XApp

# Checks a request's signature over the raw body; returns the accounts its secret may speak
# for (None: any), or raises Rejected.
Verifier = Callable[[bytes], Collection[str] | None]


def _problem(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": reason, "detail": detail}, status_code=status)


def _webhook_normalizer(*platforms: WebhookPlatform) -> Normalizer:
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


def http_router(
    ingest: WebhookIngest, metrics: IngestMetrics, settings: IngestSettings
) -> APIRouter:
    router = APIRouter()
    max_body = settings.max_body_bytes

    async def read_body(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def handle(
        request: Request,
        source: str,
        verify: Verifier | None,
        normalizer: Normalizer,
    ) -> Response:
        received_at = datetime.now(UTC)
        raw = await read_body(request)
        if raw is None:
            metrics.rejections.labels(source, "too_large").inc()
            return _problem(413, "too_large", f"body larger than {max_body} bytes")
        accounts: Collection[str] | None = None
        if verify is not None:
            try:
                accounts = verify(raw)
            except Rejected as refusal:
                metrics.rejections.labels(source, refusal.reason).inc()
                return _problem(refusal.status, refusal.reason, refusal.detail)
        try:
            accepted = await ingest.accept(
                source=source,
                raw=raw,
                received_at=received_at,
                normalize=normalizer,
                accounts=accounts,
                dead_letter_invalid=verify is not None,
            )
        except Rejected as refusal:
            return _problem(refusal.status, refusal.reason, refusal.detail)
        except Unavailable:
            metrics.rejections.labels(source, "unavailable").inc()
            return _problem(503, "unavailable", "message store unavailable, retry later")
        return JSONResponse(
            {
                "accepted": len(accepted.published),
                "ids": accepted.published,
                "duplicates": accepted.duplicates,
                "ignored": accepted.ignored,
            },
            status_code=200 if verify is not None else 202,
        )

    def meta_verifier(header: str | None) -> Verifier:
        def verify(raw: bytes) -> Collection[str] | None:
            if not header:
                raise Rejected(401, "missing_signature", "X-Hub-Signature-256 is required")
            for app in settings.meta_apps:
                if meta_signature_valid([app.app_secret.get_secret_value()], raw, header):
                    return set(app.accounts) or None
            raise Rejected(403, "bad_signature", "X-Hub-Signature-256 does not match")

        return verify

    # --- Meta: Messenger, Instagram, Page feed; WhatsApp Cloud API (same scheme) ---

    @router.get("/v1/webhooks/meta", response_class=PlainTextResponse)
    @router.get("/v1/webhooks/whatsapp", response_class=PlainTextResponse)
    async def meta_subscribe(request: Request) -> Response:
        """Meta's subscription handshake: echo `hub.challenge` when the verify token is ours."""
        query = request.query_params
        challenge = meta_handshake(
            [app.verify_token.get_secret_value() for app in settings.meta_apps],
            query.get("hub.mode"),
            query.get("hub.verify_token"),
            query.get("hub.challenge"),
        )
        if challenge is None:
            metrics.rejections.labels("meta", "bad_verify_token").inc()
            return PlainTextResponse("verification failed", status_code=403)
        return PlainTextResponse(challenge)

    @router.post("/v1/webhooks/meta")
    async def meta_webhook(request: Request) -> Response:
        """Messenger, Instagram and Page webhooks (and WhatsApp on a shared callback)."""
        return await handle(
            request,
            "meta",
            meta_verifier(request.headers.get("x-hub-signature-256")),
            _webhook_normalizer("facebook", "instagram", "whatsapp"),
        )

    @router.post("/v1/webhooks/whatsapp")
    async def whatsapp_webhook(request: Request) -> Response:
        return await handle(
            request,
            "whatsapp",
            meta_verifier(request.headers.get("x-hub-signature-256")),
            _webhook_normalizer("whatsapp"),
        )

    # --- X Account Activity API ---

    def x_app(name: str | None) -> XApp | None:
        if name is None:
            return settings.x_apps[0] if len(settings.x_apps) == 1 else None
        return next((app for app in settings.x_apps if app.name == name), None)

    @router.get("/v1/webhooks/x")
    @router.get("/v1/webhooks/x/{app_name}")
    async def x_crc(request: Request, app_name: str | None = None) -> Response:
        """X's CRC check: prove we hold the consumer secret (token already URL-decoded)."""
        app = x_app(app_name)
        token = request.query_params.get("crc_token")
        if app is None:
            return _problem(404, "unknown_app", "no such X app is configured")
        if not token:
            return _problem(400, "missing_crc_token", "crc_token is required")
        return JSONResponse(
            {"response_token": x_crc_response(app.consumer_secret.get_secret_value(), token)}
        )

    @router.post("/v1/webhooks/x")
    @router.post("/v1/webhooks/x/{app_name}")
    async def x_webhook(request: Request, app_name: str | None = None) -> Response:
        app = x_app(app_name)
        header = request.headers.get("x-twitter-webhooks-signature")

        def verify(raw: bytes) -> Collection[str] | None:
            if app is None:
                raise Rejected(404, "unknown_app", "no such X app is configured")
            if not header:
                raise Rejected(401, "missing_signature", "x-twitter-webhooks-signature is required")
            if not x_signature_valid([app.consumer_secret.get_secret_value()], raw, header):
                raise Rejected(403, "bad_signature", "x-twitter-webhooks-signature does not match")
            return set(app.accounts) or None

        return await handle(request, "x", verify, _webhook_normalizer("x"))

    # --- The generic channel: canonical-shaped JSON ---

    @router.post("/v1/messages", status_code=202)
    async def post_message(request: Request) -> Response:
        """Accept one canonical-shaped message; 202 once it is written to Kafka."""
        return await handle(request, "generic", None, normalize_generic)

    return router
