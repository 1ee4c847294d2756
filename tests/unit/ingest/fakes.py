"""An in-memory stand-in for Kafka, for HTTP-contract unit tests only (the real publisher is
exercised in tests/integration/ingest; the dedup memory's in-memory store is
`casewire_ingest.adapters.memory.InMemoryDedupStore`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from casewire_common.messages import CanonicalMessage
from casewire_common.thread_control import ThreadControl


class RecordingPublisher:
    def __init__(self, fail: bool = False) -> None:
        self.raw: list[tuple[bytes, str, dict[str, str]]] = []
        self.messages: list[CanonicalMessage] = []
        # Per published message: the integration that sent it and whether its time was adjusted.
        self.message_headers: list[tuple[str | None, bool]] = []
        # Per published message: whether it came on standby, and the app that sent it.
        self.handover_marks: list[tuple[bool, str | None]] = []
        self.thread_controls: list[ThreadControl] = []
        self.dead: list[tuple[bytes, str]] = []
        self.dead_errors: list[str] = []
        self.fail = fail

    async def publish_raw(self, raw_body: bytes, key: str, headers: dict[str, str]) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.raw.append((raw_body, key, headers))

    async def publish_messages(
        self,
        messages: Sequence[CanonicalMessage],
        *,
        integration: str | None = None,
        time_adjusted: Collection[str] = (),
        standby: Collection[str] = (),
        sending_apps: Mapping[str, str] | None = None,
        thread_controls: Sequence[ThreadControl] = (),
    ) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.messages.extend(messages)
        self.message_headers.extend(
            (integration, message.delivery_key in time_adjusted) for message in messages
        )
        self.handover_marks.extend(
            (m.delivery_key in standby, (sending_apps or {}).get(m.delivery_key)) for m in messages
        )
        self.thread_controls.extend(thread_controls)

    async def dead_letter_raw(
        self, raw_body: bytes, key: str, headers: dict[str, str], reason: str, error: str
    ) -> None:
        self.dead.append((raw_body, reason))
        self.dead_errors.append(error)
