"""The ingest app: HTTP in, Kafka out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from casewire_common.http import kafka_check, mount_operations
from casewire_common.kafka import build_broker, stop_broker
from casewire_common.logging import configure_logging
from casewire_common.metrics import new_registry
from fastapi import FastAPI

from casewire_ingest.adapters.publisher import IngestMetrics, KafkaIngestPublisher
from casewire_ingest.entrypoints.http import http_router
from casewire_ingest.settings import IngestSettings


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    configure_logging(settings.log_level)
    registry = new_registry()
    broker = build_broker(settings.kafka_bootstrap_servers, registry, "ingest")
    metrics = IngestMetrics(registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        try:
            yield
        finally:
            await stop_broker(broker, settings.shutdown_timeout_seconds)

    app = FastAPI(title="Casewire ingest", lifespan=lifespan)
    app.include_router(
        http_router(
            KafkaIngestPublisher(broker, metrics),
            metrics,
            max_body_bytes=settings.max_body_bytes,
            publish_timeout_seconds=settings.publish_timeout_seconds,
        )
    )
    mount_operations(app, registry, {"kafka": kafka_check(broker)})
    return app
