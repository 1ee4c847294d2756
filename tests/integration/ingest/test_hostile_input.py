"""Hostile input and untrusted callers against a running `casewire-ingest serve` (uvicorn, the
real broker and PostgreSQL): every answer below 500 with a reason code, a signed body that is
refused kept on the raw dead-letter topic, the service still ready and its memory bounded."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from casewire_common import topics
from casewire_dev import services
from casewire_dev import stack as local_stack
from casewire_dev.webhooks import integration_headers, meta_signature, x_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.ingest.hostile import PATHS, Endpoint, hostile_bodies

pytestmark = pytest.mark.integration

META_SECRET = "hostile-meta-secret"
X_SECRET = "hostile-x-secret"
INTEGRATION, INTEGRATION_SECRET = "webchat", "hostile-integration-secret"
# The pod's memory limit is 512 MiB (deploy/base/ingest); the process must stay well inside.
RSS_LIMIT_MB = 350


@dataclass(frozen=True)
class ServedIngest:
    url: str
    pid: int
    log_path: Path
    bootstrap: str


@pytest.fixture(scope="module")
def ingest(
    stack: local_stack.Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedIngest]:
    logs = tmp_path_factory.mktemp("hostile-ingest")
    database_url = asyncio.run(
        local_stack.ensure_database(stack.database_url, f"casewire_hostile_{time.time_ns()}")
    )
    # A broker of its own: the 5,000 messages posted here would otherwise wait on the shared
    # messages topic for every later router test, whose new consumer groups read it from the
    # start.
    port = local_stack.free_port()
    local_stack.start_broker(logs, port)
    try:
        bootstrap = f"127.0.0.1:{port}"
        asyncio.run(local_stack.create_topics(bootstrap, partitions=1))
        yield from _served(database_url, bootstrap, logs)
    finally:
        local_stack.stop_broker(logs)


def _served(database_url: str, bootstrap: str, logs: Path) -> Iterator[ServedIngest]:
    env = {
        **os.environ,
        "CASEWIRE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CASEWIRE_DATABASE_URL": database_url,
        "CASEWIRE_META_APPS": json.dumps([{"app_secret": META_SECRET, "verify_token": "v"}]),
        "CASEWIRE_X_APPS": json.dumps([{"consumer_secret": X_SECRET}]),
        "CASEWIRE_INTEGRATIONS": json.dumps(
            [{"name": INTEGRATION, "secrets": [INTEGRATION_SECRET]}]
        ),
        # Message text never in logs: the log may then be searched for tracebacks only.
        "CASEWIRE_LOG_LEVEL": "INFO",
    }
    asyncio.run(services.migrate("ingest", env, logs))
    running = services.start(services.ServiceSpec("ingest", local_stack.free_port()), env, logs)
    try:
        asyncio.run(services.wait_ready(running, asyncio.Event()))
        yield ServedIngest(
            f"http://127.0.0.1:{running.spec.port}",
            running.process.pid,
            running.log_path,
            bootstrap,
        )
    finally:
        asyncio.run(services.stop_all([running]))


def signed(endpoint: Endpoint, body: bytes) -> dict[str, str]:
    if endpoint == "x":
        return {"x-twitter-webhooks-signature": x_signature(X_SECRET, body)}
    if endpoint == "generic":
        return integration_headers(INTEGRATION, INTEGRATION_SECRET, body)
    return {"x-hub-signature-256": meta_signature(META_SECRET, body)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def answer_of(response: httpx.Response) -> dict[str, object]:
    """The answer's JSON document; every answer of a POST is one, with a reason if refused."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"] == "application/json"
    document: dict[str, object] = response.json()
    if response.status_code >= 400:
        assert isinstance(document["error"], str), document
        assert document["error"] != "unreadable_body", document  # a normalizer crashed
        assert document["detail"], document
    return document


def meta_messaging(timestamp: bytes, mid: str = "m_hostile") -> bytes:
    return (
        b'{"object":"page","entry":[{"id":"104512639872345","time":1764000000000,"messaging":[{'
        b'"sender":{"id":"6001"},"recipient":{"id":"104512639872345"},"timestamp":'
        + timestamp
        + b',"message":{"mid":"'
        + mid.encode()
        + b'","text":"hello"}}]}]}'
    )


def generic_message(pid: str, sent_at: str) -> bytes:
    return json.dumps(
        {
            "channel": "dm",
            "direction": "inbound",
            "account_id": "brand",
            "platform_message_id": pid,
            "conversation_id": f"other:brand:{pid}",
            "author": {"id": pid},
            "text": "Η παραγγελία μου δεν ήρθε",
            "sent_at": sent_at,
        }
    ).encode()


def many_messages(count: int, unique: str) -> bytes:
    now_ms = int(time.time() * 1000)
    events = [
        {
            "sender": {"id": f"7{index}"},
            "recipient": {"id": "104512639872345"},
            "timestamp": now_ms,
            "message": {"mid": f"m_{unique}_{index}", "text": "وينه طلبي"},
        }
        for index in range(count)
    ]
    entry = {"id": "104512639872345", "time": now_ms, "messaging": events}
    body = {"object": "page", "entry": [entry]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def dead_letters(bootstrap: str, bodies: set[bytes]) -> dict[bytes, str]:
    """The raw DLQ's reason for each of `bodies`, read until all are there (or 30 s)."""
    found: dict[bytes, str] = {}
    reader = AIOKafkaConsumer(
        topics.dlq(topics.RAW), bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        deadline = time.monotonic() + 30
        while set(found) != bodies and time.monotonic() < deadline:
            batch = await reader.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    if record.value in bodies:
                        headers = dict(record.headers)
                        found[record.value] = headers[topics.DLQ_REASON_HEADER].decode()
    finally:
        await reader.stop()
    return found


def test_the_issue_table_reads_what_it_should(ingest: ServedIngest, unique: str) -> None:
    """Each row of the table: input, then the status and reason it gets."""
    now = datetime.now(UTC).isoformat()
    deep = b'{"object":"page","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    # name, endpoint, body, signed, status, reason
    rows: list[tuple[str, Endpoint, bytes, bool, int, str]] = [
        ("generic, no credentials", "generic", generic_message(f"a{unique}", now), False, 401,
         "missing_credentials"),
        ("generic, sent_at 9999-12-31", "generic",
         generic_message(f"b{unique}", "9999-12-31T00:00:00Z"), True, 422, "implausible_sent_at"),
        ("signed Meta body, 100,000 levels deep", "meta", deep, True, 400, "too_deep"),
        ("unsigned generic body, 100,000 levels deep", "generic", b"[" * 100_000, False, 401,
         "missing_credentials"),
        ("signed body with a 5,000-digit integer", "meta", meta_messaging(b"9" * 5000), True, 400,
         "malformed_json"),
        ("signed body with NaN as a timestamp", "meta", meta_messaging(b"NaN"), True, 400,
         "malformed_json"),
        ("2 MB body", "meta", b" " * 2_000_000, True, 413, "too_large"),
        ("invalid UTF-8", "x", b'{"for_user_id":"\xff"}', True, 400, "malformed_json"),
        ("missing signature", "meta", meta_messaging(b"1764000000000"), False, 401,
         "missing_signature"),
    ]  # fmt: skip
    refused_signed: dict[bytes, str] = {}
    with httpx.Client(base_url=ingest.url, timeout=30) as client:
        for name, endpoint, body, sign, status, reason in rows:
            headers = signed(endpoint, body) if sign else {}
            response = client.post(PATHS[endpoint], content=body, headers=headers)
            assert (response.status_code, answer_of(response)["error"]) == (status, reason), name
            if sign and status != 413:
                refused_signed[body] = reason
        started = time.monotonic()
        body = many_messages(5000, unique)
        response = client.post(PATHS["meta"], content=body, headers=signed("meta", body))
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text[:300]
        assert answer_of(response)["accepted"] == 5000
        assert client.get("/readyz").status_code == 200
    print(f"5,000 messages in one body answered in {elapsed * 1000:.0f} ms")
    assert asyncio.run(dead_letters(ingest.bootstrap, set(refused_signed))) == refused_signed


def test_a_platform_time_from_the_future_is_replaced_and_flagged(
    ingest: ServedIngest, unique: str
) -> None:
    body = meta_messaging(b"4102444800000", mid=f"m_future_{unique}")  # 2100-01-01
    with httpx.Client(base_url=ingest.url, timeout=10) as client:
        response = client.post(PATHS["meta"], content=body, headers=signed("meta", body))
        assert response.status_code == 200, response.text
        [message_id] = response.json()["ids"]

    async def published() -> tuple[dict[str, object], dict[str, bytes]]:
        reader = AIOKafkaConsumer(
            topics.MESSAGES, bootstrap_servers=ingest.bootstrap, auto_offset_reset="earliest"
        )
        await reader.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                for records in (await reader.getmany(timeout_ms=500)).values():
                    for record in records:
                        document = json.loads(record.value)
                        if document["id"] == message_id:
                            return document, dict(record.headers)
        finally:
            await reader.stop()
        raise AssertionError("the message was not published")

    document, headers = asyncio.run(published())
    assert document["sent_at"] == document["received_at"]
    assert headers[topics.TIME_ADJUSTED_HEADER] == b"true"


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
@given(sample=hostile_bodies(), sign=st.booleans())
def test_hostile_bodies_on_every_endpoint_never_get_a_5xx(
    ingest: ServedIngest, sample: tuple[Endpoint, bytes], sign: bool
) -> None:
    endpoint, body = sample
    with httpx.Client(base_url=ingest.url, timeout=30) as client:
        headers = signed(endpoint, body) if sign else {}
        answer = answer_of(client.post(PATHS[endpoint], content=body, headers=headers))
        if not sign:
            assert answer["error"] in ("missing_signature", "missing_credentials"), answer
        assert client.get("/readyz").status_code == 200
    assert rss_mb(ingest.pid) < RSS_LIMIT_MB


query_names = st.sampled_from(
    ["hub.mode", "hub.verify_token", "hub.challenge", "crc_token", "hub.mode[]", ""]
)
query_values = st.text(max_size=2000) | st.sampled_from(
    ["subscribe", "v", "%ff%fe", "%00", "%ed%a0%80", "%", "%zz", "a" * 8000]
)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(
        ["/v1/webhooks/meta", "/v1/webhooks/whatsapp", "/v1/webhooks/x", "/v1/webhooks/x/default",
         "/v1/webhooks/x/%ff", "/v1/webhooks/x/a/b"]
    ),
    query=st.lists(st.tuples(query_names, query_values), max_size=4),
)  # fmt: skip
def test_hostile_handshakes_never_get_a_5xx(
    ingest: ServedIngest, path: str, query: list[tuple[str, str]]
) -> None:
    # Percent-encoded as a client must, except `%` itself: `%ff`, `%zz`, `%` reach the server
    # as they are (invalid UTF-8, invalid escapes).
    raw_query = "&".join(
        f"{quote(name, safe='%')}={quote(value, safe='%')}" for name, value in query
    )
    with httpx.Client(base_url=ingest.url, timeout=30) as client:
        response = client.get(httpx.URL(ingest.url + path, query=raw_query.encode()))
        assert response.status_code < 500, (response.status_code, response.text[:300])
        if response.status_code >= 400 and path in ("/v1/webhooks/x", "/v1/webhooks/x/default"):
            assert response.json()["error"]  # X's CRC check answers with a reason code
        assert client.get("/readyz").status_code == 200


def test_after_the_hostile_input_the_log_holds_no_traceback_and_no_text(
    ingest: ServedIngest,
) -> None:
    """Runs after the tests above (file order): nothing they sent made ingest fail, and no
    message text reached the log."""
    log = ingest.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log
    assert '"level": "error"' not in log
    assert "Η παραγγελία μου δεν ήρθε" not in log
    assert "وينه طلبي" not in log
