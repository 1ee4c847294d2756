import pytest
from casewire_common.kafka import batch_consumer_options
from casewire_common.settings import ServiceSettings
from pydantic import ValidationError


def test_group_timing_reaches_every_batch_subscriber() -> None:
    settings = ServiceSettings(
        consumer_session_timeout_ms=2000,
        consumer_heartbeat_interval_ms=400,
        consumer_max_poll_interval_ms=60_000,
        consumer_rebalance_timeout_ms=5000,
        consumer_group_instance_id="router-0",
    )
    options = batch_consumer_options(settings)
    assert options["session_timeout_ms"] == 2000
    assert options["heartbeat_interval_ms"] == 400
    assert options["max_poll_interval_ms"] == 60_000
    assert options["rebalance_timeout_ms"] == 5000
    assert options["group_instance_id"] == "router-0"


def test_membership_is_dynamic_unless_an_instance_id_is_set() -> None:
    assert batch_consumer_options(ServiceSettings())["group_instance_id"] is None


def test_a_heartbeat_slower_than_a_third_of_the_session_is_refused() -> None:
    with pytest.raises(ValidationError, match="HEARTBEAT_INTERVAL_MS"):
        ServiceSettings(consumer_session_timeout_ms=2000, consumer_heartbeat_interval_ms=700)
