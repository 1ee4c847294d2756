"""Kafka topic names: the published contract between the services."""

RAW = "casewire.raw.v1"
MESSAGES = "casewire.messages.v1"
CASE_EVENTS = "casewire.case-events.v1"
SLA_ALERTS = "casewire.sla-alerts.v1"

ALL = (RAW, MESSAGES, CASE_EVENTS, SLA_ALERTS)

# Headers on dead-letter records: why the record could not be processed, and where it came from.
DLQ_REASON_HEADER = "casewire-dlq-reason"
DLQ_ERROR_HEADER = "casewire-dlq-error"
DLQ_SOURCE_HEADER = "casewire-dlq-source"
# Ingest's records: the generic channel's integration that sent a body (on the raw topics) and
# its messages (on the messages topic); a message whose platform time was implausible and
# replaced by the receipt time. Headers, not fields: the canonical message is a closed schema.
INTEGRATION_HEADER = "casewire-integration"
TIME_ADJUSTED_HEADER = "casewire-time-adjusted"
# Meta's handover protocol (`casewire_common.thread_control`): what a record on the messages topic
# holds when it is not a canonical message (`thread_control`); a message read on the `standby`
# channel (another app owned the thread: `true`); the app that sent an echo (Meta's `app_id`).
RECORD_HEADER = "casewire-record"
STANDBY_HEADER = "casewire-standby"
APP_ID_HEADER = "casewire-app-id"


def dlq(topic: str) -> str:
    """The dead-letter topic of `topic`."""
    return f"{topic}.dlq"
