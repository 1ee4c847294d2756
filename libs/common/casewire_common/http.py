"""HTTP endpoints every service exposes: liveness, readiness, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import asyncpg
from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from faststream.kafka import KafkaBroker
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], Awaitable[bool]]


def kafka_check(broker: KafkaBroker, timeout: float = 2.0) -> ReadinessCheck:
    async def check() -> bool:
        return bool(await broker.ping(timeout))

    return check


def postgres_check(pool: Callable[[], asyncpg.Pool | None], timeout: float = 2.0) -> ReadinessCheck:
    async def check() -> bool:
        current = pool()
        if current is None:
            return False
        async with asyncio.timeout(timeout):
            return bool(await current.fetchval("SELECT 1") == 1)

    return check


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    """`/healthz` answers while the process runs (never depends on Kafka or PostgreSQL);
    `/readyz` answers 200 only when every dependency in `checks` is reachable."""
    router = APIRouter(include_in_schema=False)

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                results[name] = "ok" if await check() else "unreachable"
            except Exception as error:  # a failed probe is an answer, not a crash
                results[name] = f"unreachable: {type(error).__name__}"
        ready = all(value == "ok" for value in results.values())
        return JSONResponse(results, status_code=200 if ready else 503)

    return router


def mount_operations(
    app: FastAPI, registry: CollectorRegistry, checks: Mapping[str, ReadinessCheck]
) -> None:
    app.include_router(health_router(checks))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run an app until SIGTERM/SIGINT; in-flight requests and the lifespan shutdown complete."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
    )
