"""Prometheus helpers: one registry per service, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry


def new_registry() -> CollectorRegistry:
    """A service-owned registry (no global default: tests build several apps in one process)."""
    return CollectorRegistry(auto_describe=True)
