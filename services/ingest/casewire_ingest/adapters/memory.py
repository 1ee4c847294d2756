"""Ingest's storage in memory, for unit tests: the dedup memory without PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence


class InMemoryDedupStore:
    """The dedup memory (`webhook_service.DedupStore`) in a set: a key published once is never
    claimed again; claims do not expire (no request dies half-way in a unit test)."""

    def __init__(self) -> None:
        self.published: set[str] = set()

    async def claim(self, keys: Sequence[str]) -> set[str]:
        return {key for key in keys if key not in self.published}

    def mark_published(self, keys: Sequence[str]) -> None:
        self.published.update(keys)

    async def release(self, keys: Sequence[str]) -> None:
        self.published.difference_update(keys)

    async def abandoned(self, keys: Sequence[str]) -> set[str]:
        return set()

    async def in_flight(self, keys: Sequence[str]) -> set[str]:
        return set()  # a claim here is published at once: nothing is ever in flight
