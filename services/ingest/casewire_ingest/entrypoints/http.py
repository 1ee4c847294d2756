"""HTTP entrypoints of ingest: the generic channel `POST /v1/messages`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from casewire_ingest.adapters.publisher import IngestMetrics, IngestPublisher
from casewire_ingest.domain.generic import GenericMessage, to_canonical

log = structlog.get_logger(__name__)


def _problem(status: int, reason: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": reason}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def _validation_detail(error: ValidationError) -> list[dict[str, Any]]:
    # Field locations and messages only: never echo the submitted values back.
    return [
        {"loc": [str(part) for part in item["loc"]], "msg": item["msg"], "type": item["type"]}
        for item in error.errors()
    ]


def http_router(
    publisher: IngestPublisher,
    metrics: IngestMetrics,
    *,
    max_body_bytes: int,
    publish_timeout_seconds: float,
) -> APIRouter:
    router = APIRouter()

    async def read_body(request: Request) -> bytes | None:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    @router.post("/v1/messages", status_code=202)
    async def post_message(request: Request) -> JSONResponse:
        """Accept one canonical-shaped message; 202 once it is written to Kafka."""
        endpoint = "generic"
        raw = await read_body(request)
        if raw is None:
            metrics.rejections.labels(endpoint, "too_large").inc()
            return _problem(413, f"body larger than {max_body_bytes} bytes")
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            metrics.rejections.labels(endpoint, "malformed_json").inc()
            return _problem(400, f"malformed JSON: {error}")
        if not isinstance(document, dict):
            metrics.rejections.labels(endpoint, "not_an_object").inc()
            return _problem(422, "the body must be a JSON object (one message)")
        try:
            message = to_canonical(
                GenericMessage.model_validate(document), received_at=datetime.now(UTC)
            )
        except ValidationError as error:
            metrics.rejections.labels(endpoint, "invalid_message").inc()
            return _problem(422, "invalid message", _validation_detail(error))
        try:
            async with asyncio.timeout(publish_timeout_seconds):
                await publisher.publish(raw, message.conversation_id, endpoint, [message])
        except Exception as error:  # any broker failure: the platform must retry
            metrics.rejections.labels(endpoint, "kafka_unavailable").inc()
            log.warning("publish failed", endpoint=endpoint, error=type(error).__name__)
            return _problem(503, "message store unavailable, retry later")
        log.info(
            "message accepted",
            endpoint=endpoint,
            message_id=message.id,
            platform=message.platform,
            direction=message.direction,
        )
        return JSONResponse(
            {"id": message.id, "conversation_id": message.conversation_id}, status_code=202
        )

    return router
