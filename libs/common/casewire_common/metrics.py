"""Prometheus helpers: one registry per service, served at /metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app


def new_registry() -> CollectorRegistry:
    """A service-owned registry (no global default: tests build several apps in one process)."""
    return CollectorRegistry(auto_describe=True)


def metrics_app(registry: CollectorRegistry) -> Any:
    """The ASGI app that serves `registry` in the Prometheus text format."""
    return make_asgi_app(registry=registry)
