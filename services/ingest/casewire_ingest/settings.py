from __future__ import annotations

from casewire_common.settings import ServiceSettings


class IngestSettings(ServiceSettings):
    max_body_bytes: int = 1_048_576
    publish_timeout_seconds: float = 10.0
