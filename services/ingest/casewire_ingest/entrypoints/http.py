"""HTTP entrypoints of ingest: platform webhooks (verified over the raw bytes) and the generic
channel. Every refusal is a 4xx with a reason code; no stack trace ever reaches a caller.

The POSTs that carry messages are served by `WebhookEndpoints`, a plain ASGI layer in front of
FastAPI: they take only raw bytes and answer small JSON documents, and FastAPI's routing,
request and response objects cost more than the rest of such a request. The handshakes stay
FastAPI routes (`handshake_api`); `IngestApp` is the FastAPI app with both.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from casewire_ingest.adapters.publisher import IngestMetrics
from casewire_ingest.domain.signatures import (
    hex_signature_valid,
    meta_handshake,
    token_sha256,
    x_crc_response,
    x_signature_valid,
)
from casewire_ingest.domain.sources import SOURCE_NORMALIZERS, Normalizer
from casewire_ingest.settings import IngestSettings, XApp
from casewire_ingest.webhook_service import Rejected, Unavailable, WebhookService


@dataclass(frozen=True)
class Caller:
    """Who a verified request comes from: the accounts its secret may speak for (None: any)
    and, on the generic channel, the integration."""

    accounts: Collection[str] | None = None
    integration: str | None = None


# Checks a request's signature over the raw body; returns its caller, or raises Rejected.
Verifier = Callable[[bytes], Caller]


Answer = tuple[int, Mapping[str, Any]]

X_WEBHOOK_PATH = "/v1/webhooks/x"


def _problem(status: int, reason: str, detail: str) -> Answer:
    return status, {"error": reason, "detail": detail}


def _problem_response(status: int, reason: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": reason, "detail": detail}, status_code=status)


class IngestApp(FastAPI):
    """FastAPI with ingest's endpoints: the handshakes as routes, the webhook POSTs answered
    in front of FastAPI's middleware (each layer is a frame that every await of a request
    passes through again; a webhook waits for four writes)."""

    def __init__(
        self,
        ingest: WebhookService,
        metrics: IngestMetrics,
        settings: IngestSettings,
        **fastapi_options: Any,
    ) -> None:
        super().__init__(**fastapi_options)
        self.include_router(handshake_api(settings, metrics))
        self.message_endpoints = WebhookEndpoints(
            super().__call__, ingest=ingest, metrics=metrics, settings=settings
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.message_endpoints(scope, receive, send)


def x_app(settings: IngestSettings, name: str | None) -> XApp | None:
    """The X app a webhook path names; without a name, the only one configured."""
    if name is None:
        return settings.x_apps[0] if len(settings.x_apps) == 1 else None
    return next((app for app in settings.x_apps if app.name == name), None)


@dataclass(frozen=True)
class Endpoint:
    """A POST that carries messages: who signs it and which bodies it takes."""

    source: str
    # The request's headers and the X app named in the path, to the body's verifier.
    verifier: Callable[[Headers, str | None], Verifier]
    normalizer: Normalizer
    status: int  # of an accepted body


class WebhookEndpoints:
    """ASGI layer answering the message-carrying POSTs; everything else goes to `app`.

    An unexpected error propagates: the server answers 500 without details and logs it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        ingest: WebhookService,
        metrics: IngestMetrics,
        settings: IngestSettings,
    ) -> None:
        self._app = app
        self._ingest = ingest
        self._metrics = metrics
        self._settings = settings
        meta = Endpoint("meta", self._meta_verifier, SOURCE_NORMALIZERS["meta"], 200)
        whatsapp = Endpoint("whatsapp", self._meta_verifier, SOURCE_NORMALIZERS["whatsapp"], 200)
        self._x = Endpoint("x", self._x_verifier, SOURCE_NORMALIZERS["x"], 200)
        self._endpoints = {
            "/v1/webhooks/meta": meta,
            "/v1/webhooks/whatsapp": whatsapp,
            X_WEBHOOK_PATH: self._x,
            "/v1/messages": Endpoint(
                "generic", self._integration_verifier, SOURCE_NORMALIZERS["generic"], 202
            ),
        }
        self._integration_secrets = {
            integration.name: [secret.get_secret_value() for secret in integration.secrets]
            for integration in settings.integrations
        }
        self._integration_tokens = {
            digest: integration.name
            for integration in settings.integrations
            for digest in integration.token_sha256
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            endpoint = self._endpoints.get(path)
            app_name = None
            if endpoint is None and path.startswith(X_WEBHOOK_PATH + "/"):
                app_name = path.removeprefix(X_WEBHOOK_PATH + "/")
                endpoint = None if "/" in app_name else self._x
            if endpoint is not None:
                answer = await self._handle(endpoint, app_name, scope, receive)
                if answer is not None:
                    await _send_json(send, *answer)
                return
        await self._app(scope, receive, send)

    async def _handle(
        self, endpoint: Endpoint, app_name: str | None, scope: Scope, receive: Receive
    ) -> Answer | None:
        """The answer to one POST; None when the client went away before sending its body."""
        received_at = datetime.now(UTC)
        headers = Headers(scope=scope)
        source = endpoint.source
        max_body = self._settings.max_body_bytes
        try:
            raw = await _read_body(receive, headers, max_body)
        except _Disconnected:
            return None
        if raw is None:
            self._metrics.rejections.labels(source, "too_large").inc()
            return _problem(413, "too_large", f"body larger than {max_body} bytes")
        try:
            caller = endpoint.verifier(headers, app_name)(raw)
        except Rejected as refusal:
            self._metrics.rejections.labels(source, refusal.reason).inc()
            return _problem(refusal.status, refusal.reason, refusal.detail)
        try:
            accepted = await self._ingest.accept(
                source=source,
                raw=raw,
                received_at=received_at,
                normalize=endpoint.normalizer,
                accounts=caller.accounts,
                integration=caller.integration,
            )
        except Rejected as refusal:
            return _problem(refusal.status, refusal.reason, refusal.detail)
        except Unavailable as unavailable:
            self._metrics.rejections.labels(source, unavailable.reason).inc()
            return _problem(503, unavailable.reason, unavailable.detail)
        return endpoint.status, {
            "accepted": len(accepted.published),
            "ids": accepted.published,
            "duplicates": accepted.duplicates,
            "thread_controls": len(accepted.thread_controls),
            "ignored": accepted.ignored,
            # Items it could not read: answered 200 all the same, or the platform would resend
            # the body for ever; they are on the raw DLQ.
            "rejected": [
                {"where": item.where, "reason": item.reason} for item in accepted.rejected
            ],
        }

    def _meta_verifier(self, headers: Headers, _: str | None) -> Verifier:
        """Meta and WhatsApp: `X-Hub-Signature-256`, by any configured app's secret."""
        header = headers.get("x-hub-signature-256")
        apps = self._settings.meta_apps

        def verify(raw: bytes) -> Caller:
            if not header:
                raise Rejected(401, "missing_signature", "X-Hub-Signature-256 is required")
            for app in apps:
                if hex_signature_valid([app.app_secret.get_secret_value()], raw, header):
                    return Caller(set(app.accounts) or None)
            raise Rejected(403, "bad_signature", "X-Hub-Signature-256 does not match")

        return verify

    def _x_verifier(self, headers: Headers, app_name: str | None) -> Verifier:
        """X: `x-twitter-webhooks-signature`, by the secret of the app the path names."""
        app = x_app(self._settings, app_name)
        header = headers.get("x-twitter-webhooks-signature")

        def verify(raw: bytes) -> Caller:
            if app is None:
                raise Rejected(404, "unknown_app", "no such X app is configured")
            if not header:
                raise Rejected(401, "missing_signature", "x-twitter-webhooks-signature is required")
            if not x_signature_valid([app.consumer_secret.get_secret_value()], raw, header):
                raise Rejected(403, "bad_signature", "x-twitter-webhooks-signature does not match")
            return Caller(set(app.accounts) or None)

        return verify

    def _integration_verifier(self, headers: Headers, _: str | None) -> Verifier:
        """The generic channel: a bearer token (known by its hash), or the named integration's
        `X-Casewire-Signature` over the raw body. Missing or unknown: 401; wrong: 403."""
        authorization = headers.get("authorization")
        name = headers.get("x-casewire-integration")
        signature = headers.get("x-casewire-signature")

        def verify(raw: bytes) -> Caller:
            if authorization is not None:
                scheme, _, token = authorization.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Rejected(401, "bad_authorization", "Authorization: Bearer <token>")
                digest = token_sha256(token.strip())
                for known, integration in self._integration_tokens.items():
                    if hmac.compare_digest(known, digest):
                        return Caller(integration=integration)
                raise Rejected(401, "unknown_token", "the bearer token is not an integration's")
            if name is None:
                raise Rejected(
                    401,
                    "missing_credentials",
                    "X-Casewire-Integration and X-Casewire-Signature, or a bearer token,"
                    " are required",
                )
            secrets = self._integration_secrets.get(name)
            if secrets is None:
                raise Rejected(401, "unknown_integration", "no such integration is configured")
            if not signature:
                raise Rejected(401, "missing_signature", "X-Casewire-Signature is required")
            if not hex_signature_valid(secrets, raw, signature):
                raise Rejected(403, "bad_signature", "X-Casewire-Signature does not match")
            return Caller(integration=name)

        return verify


class _Disconnected(Exception):
    """The client closed the connection before its body was complete."""


async def _read_body(receive: Receive, headers: Headers, max_body: int) -> bytes | None:
    """The request body, or None when it is larger than `max_body` (said or seen)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


# Encodes as FastAPI's JSONResponse does; built once (json.dumps with options builds one per call).
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


async def _send_json(send: Send, status: int, document: Mapping[str, Any]) -> None:
    body = _JSON_ENCODER.encode(document).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def handshake_api(settings: IngestSettings, metrics: IngestMetrics) -> APIRouter:
    """The subscription handshakes (GET); the POSTs are `WebhookEndpoints`'."""
    routes = APIRouter()

    @routes.get("/v1/webhooks/meta", response_class=PlainTextResponse)
    @routes.get("/v1/webhooks/whatsapp", response_class=PlainTextResponse)
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

    @routes.get(X_WEBHOOK_PATH)
    @routes.get(X_WEBHOOK_PATH + "/{app_name}")
    async def x_crc(request: Request, app_name: str | None = None) -> Response:
        """X's CRC check: prove we hold the consumer secret (token already URL-decoded)."""
        app = x_app(settings, app_name)
        token = request.query_params.get("crc_token")
        if app is None:
            return _problem_response(404, "unknown_app", "no such X app is configured")
        if not token:
            return _problem_response(400, "missing_crc_token", "crc_token is required")
        return JSONResponse(
            {"response_token": x_crc_response(app.consumer_secret.get_secret_value(), token)}
        )

    return routes
