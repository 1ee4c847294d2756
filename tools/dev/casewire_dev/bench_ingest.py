"""`make bench`, ingest part: how many signed platform webhooks one ingest process takes per
second, next to what a bare ASGI endpoint takes under the same server, client and requests.

- `ingest_requests_per_s`: signed Meta webhook bodies (Messenger, Instagram, WhatsApp Cloud
  API, shapes from `payloads/` read in place, one new customer message each with its own
  `mid` / `wamid`, texts from real TWCS tweets) POSTed over keep-alive HTTP/1.1 on loopback
  to ONE real `casewire-ingest serve` process: signature check, normalization, language
  detection, PostgreSQL dedup and both Kafka writes (`casewire.raw.v1`, then
  `casewire.messages.v1`) before each 200.
- `bare_asgi_requests_per_s`: the same requests, from the same client, to a raw ASGI app that
  reads the body and answers 200, run by `casewire_common.http.serve` (so with the uvicorn
  settings of every service) in its own process; measured before and after ingest, averaged.
- `ingest_vs_bare_asgi`: their ratio (the goal is at least 0.3).

The client (`load_client.generate_load`) is lean on purpose (it must not be what limits the
bare endpoint): asyncio protocols on raw sockets, N keep-alive connections with one request
in flight each, requests built, signed and encoded before the clock starts, and only the
status line and Content-Length read from answers. Every run has a warm-up that is not
counted. The CPU time of the client, of the server and (for ingest) of the broker and
PostgreSQL over the measured window (`cpu`) is printed, with how busy the machine was.

A run counts only if every answer was 200 and the broker holds exactly one message on
`casewire.messages.v1` (and one body on `casewire.raw.v1`) per answered ingest request, each
message one of the sent ones, none twice.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from casewire_common import topics

from casewire_dev import bench_runs, bench_workload, services, stack
from casewire_dev.cpu import stack_processes
from casewire_dev.load_client import HOST, LoadRun, encode_request, generate_load
from casewire_dev.paths import repo_root, shared_data
from casewire_dev.results import BenchError, Results, metric, ratio
from casewire_dev.webhooks import (
    DISPLAY_NUMBER,
    INSTAGRAM_ID,
    PAGE_ID,
    PHONE_NUMBER_ID,
    WABA_ID,
    meta_signature,
)

META_WEBHOOK_PATH = "/v1/webhooks/meta"
APP_SECRET = "casewire-bench-meta-app-secret"  # noqa: S105 - a throw-away secret for the run
VERIFY_TOKEN = "casewire-bench-verify-token"  # noqa: S105

# Shapes of what Meta sends, read in place from the shared payloads.
PAYLOADS = Path("payloads")
TEMPLATE_FILES = {
    "messenger": PAYLOADS / "messenger" / "restfb_messaging-message-basic.json",
    "instagram": PAYLOADS / "instagram" / "courier_hello_msg.json",
    "whatsapp": PAYLOADS / "whatsapp" / "restfb_webhook-incoming-message-text.json",
}

WebhookKind = Literal["messenger", "instagram", "whatsapp"]
# A care desk's mix of private channels: WhatsApp and Messenger carry most of it.
KIND_MIX: tuple[tuple[WebhookKind, float], ...] = (
    ("messenger", 0.4),
    ("whatsapp", 0.4),
    ("instagram", 0.2),
)
PLATFORM_OF: dict[WebhookKind, str] = {
    "messenger": "facebook",
    "instagram": "instagram",
    "whatsapp": "whatsapp",
}

CUSTOMERS_PER_KIND = 3000

K = TypeVar("K", bound=Hashable)

BUSY_MACHINE_CORES = 0.25  # used by other processes: warn that a figure is disturbed


# --- Workload: signed webhook bodies -----------------------------------------------------


@dataclass(frozen=True)
class Templates:
    messenger: dict[str, Any]
    instagram: dict[str, Any]
    whatsapp: dict[str, Any]


def read_templates(shared: Path) -> Templates:
    """One real body of each kind, from `payloads/` under the shared data folder."""
    loaded = {
        kind: json.loads((shared / path).read_text("utf-8"))
        for kind, path in TEMPLATE_FILES.items()
    }
    return Templates(**loaded)


@dataclass(frozen=True)
class Webhook:
    kind: WebhookKind
    message_id: str  # the platform's id of the one message in the body (mid, wamid)
    body: bytes


def _like(example: Any, value: str) -> str | int:
    """`value` as the template has that id: a JSON number or a string."""
    return int(value) if isinstance(example, int) and not isinstance(example, bool) else value


def meta_dm_body(
    template: Mapping[str, Any],
    *,
    account_id: str,
    customer_id: str,
    mid: str,
    text: str,
    sent_ms: int,
) -> dict[str, Any]:
    """A Messenger or Instagram Direct webhook (first entry, first messaging event of the
    template) carrying one customer message."""
    body = copy.deepcopy(dict(template))
    entry = body["entry"][0]
    event = entry["messaging"][0]
    entry["id"] = _like(entry["id"], account_id)
    entry["time"] = sent_ms + 150  # Meta stamps the entry a moment after the message
    event["sender"]["id"] = _like(event["sender"]["id"], customer_id)
    event["recipient"]["id"] = _like(event["recipient"]["id"], account_id)
    event["timestamp"] = sent_ms
    event["message"]["mid"] = mid
    event["message"]["text"] = text
    return body


def whatsapp_body(
    template: Mapping[str, Any], *, wa_id: str, wamid: str, text: str, sent_s: int
) -> dict[str, Any]:
    """A WhatsApp Cloud API webhook (first entry, first change of the template) carrying one
    customer text message."""
    body = copy.deepcopy(dict(template))
    entry = body["entry"][0]
    entry["id"] = WABA_ID
    value = entry["changes"][0]["value"]
    value["metadata"] = {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": PHONE_NUMBER_ID}
    value["contacts"][0]["wa_id"] = wa_id
    message = value["messages"][0]
    message["from"] = wa_id
    message["id"] = wamid
    message["timestamp"] = str(sent_s)
    message["text"] = {"body": text}
    return body


def encode_body(body: Mapping[str, Any]) -> bytes:
    """As Meta sends it: compact JSON, non-ASCII as \\u escapes."""
    return json.dumps(body, separators=(",", ":")).encode("ascii")


def _unique_token(rng: random.Random, index: int, size: int) -> bytes:
    """`size` bytes that no other request of the run has (its index comes first)."""
    return index.to_bytes(4, "big") + rng.randbytes(size - 4)


def build_webhooks(
    templates: Templates, texts: Sequence[str], count: int, *, seed: int, now: datetime
) -> list[Webhook]:
    """`count` webhook bodies, each with one new customer message (an id never used before in
    the run); the same seed and `now` give the same bytes."""
    if not texts:
        raise ValueError("no texts to send")
    rng = random.Random(seed)
    kinds = [kind for kind, _ in KIND_MIX]
    weights = [weight for _, weight in KIND_MIX]
    customers: dict[WebhookKind, list[str]] = {
        "messenger": [str(rng.randrange(10**15, 10**16)) for _ in range(CUSTOMERS_PER_KIND)],
        "instagram": [str(rng.randrange(10**16, 10**17)) for _ in range(CUSTOMERS_PER_KIND)],
        "whatsapp": [str(rng.randrange(10**11, 10**12)) for _ in range(CUSTOMERS_PER_KIND)],
    }
    now_ms = int(now.timestamp() * 1000)
    webhooks: list[Webhook] = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        customer = rng.choice(customers[kind])
        text = rng.choice(texts)
        sent_ms = now_ms - rng.randrange(0, 5000)
        body: dict[str, Any]
        if kind == "whatsapp":
            token = base64.b64encode(b"\x15\x02\x00\x11\x18\x12" + _unique_token(rng, index, 18))
            message_id = f"wamid.{token.decode()}"
            body = whatsapp_body(
                templates.whatsapp,
                wa_id=customer,
                wamid=message_id,
                text=text,
                sent_s=sent_ms // 1000,
            )
        else:
            if kind == "messenger":
                token = base64.urlsafe_b64encode(_unique_token(rng, index, 64))
                message_id = "m_" + token.decode().rstrip("=")
                template, account = templates.messenger, PAGE_ID
            else:
                item = f"ig_item:1:IGMessageThread:{INSTAGRAM_ID}:{customer}:"
                token = base64.b64encode(item.encode() + _unique_token(rng, index, 24))
                message_id = token.decode().rstrip("=")
                template, account = templates.instagram, INSTAGRAM_ID
            body = meta_dm_body(
                template,
                account_id=account,
                customer_id=customer,
                mid=message_id,
                text=text,
                sent_ms=sent_ms,
            )
        webhooks.append(Webhook(kind, message_id, encode_body(body)))
    return webhooks


def signed_request(body: bytes, secret: str = APP_SECRET) -> bytes:
    """What Meta POSTs to a webhook callback, signed with the app secret."""
    sha1 = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
    return encode_request(
        META_WEBHOOK_PATH,
        body,
        [
            ("User-Agent", "facebookexternalua"),
            ("Accept", "*/*"),
            ("Content-Type", "application/json"),
            ("X-Hub-Signature", f"sha1={sha1}"),
            ("X-Hub-Signature-256", meta_signature(secret, body)),
        ],
    )


# --- The bare ASGI endpoint -----------------------------------------------------------------

Scope = Mapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_BARE_BODY = b'{"status":"ok"}'
_BARE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BARE_BODY)).encode()),
]


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The least an HTTP endpoint does: read the request body, answer 200."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body", False))
    await send({"type": "http.response.start", "status": 200, "headers": _BARE_HEADERS})
    await send({"type": "http.response.body", "body": _BARE_BODY})


def serve_bare(port: int) -> None:
    """Run `bare_app` exactly as every service is run (`casewire_common.http.serve`)."""
    from casewire_common.http import serve
    from fastapi import FastAPI

    serve(cast(FastAPI, bare_app), HOST, port)


def _start_bare(port: int, log_dir: Path) -> services.RunningService:
    log_path = log_dir / "bare-asgi.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "casewire_dev.bench_ingest", "serve-bare", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return services.RunningService(services.ServiceSpec("bare-asgi", port), process, log_path)


# --- The benchmark --------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestOptions:
    connections: int = 32
    seconds: float = 10.0  # the ingest window
    bare_seconds: float = 4.0  # each of the two bare windows
    warmup: float = 2.0
    requests: int = 40_000  # built and signed beforehand; the ingest run stops if they run out
    seed: int = 7


async def _read_ours(
    bootstrap: str, topic: str, ours: Mapping[K, int], key_of: Callable[[Any], K], expected: int
) -> list[K]:
    """The keys of the records of `topic` that are in `ours` (other benchmarks' records on
    the topic are skipped), read until `expected` of them are in (`bench_runs.read_topic`)."""
    records = await bench_runs.read_topic(
        bootstrap, topic, expected, keep=lambda record: key_of(record) in ours
    )
    return [key_of(record) for record in records]


def check_written_once(topic: str, keys: Sequence[K], index: Mapping[K, int], sent: int) -> int:
    """How many of the run's records `keys` are; fails if one is there twice, or one belongs
    to a request at or after `sent` (the position of each in the run is `index[key]`)."""
    counts = Counter(keys)
    twice = [key for key, count in counts.items() if count > 1]
    if twice:
        raise BenchError(f"{len(twice)} records written twice to {topic}, e.g. {twice[0]!r:.120}")
    if any(index[key] >= sent for key in counts):
        raise BenchError(f"{topic} holds a record of a request that was never sent")
    return len(keys)


def _message_key(record: Any) -> tuple[str, str]:
    message = json.loads(record.value)
    return str(message.get("platform")), str(message.get("platform_message_id"))


def _raw_key(record: Any) -> bytes:
    return bytes(record.value)


async def _count_published(
    bootstrap: str, webhooks: Sequence[Webhook], sent: int
) -> tuple[int, int]:
    """This run's bodies on `casewire.raw.v1` and messages on `casewire.messages.v1` (each
    written once, none of a request that was not sent)."""
    bodies = {webhook.body: index for index, webhook in enumerate(webhooks)}
    messages = {
        (PLATFORM_OF[webhook.kind], webhook.message_id): index
        for index, webhook in enumerate(webhooks)
    }
    raw = await _read_ours(bootstrap, topics.RAW, bodies, _raw_key, sent)
    published = await _read_ours(bootstrap, topics.MESSAGES, messages, _message_key, sent)
    return (
        check_written_once(topics.RAW, raw, bodies, sent),
        check_written_once(topics.MESSAGES, published, messages, sent),
    )


def _report(run: LoadRun) -> None:
    print(
        f"  {run.target}: {run.rate:,.0f} req/s ({run.measured:,} in {run.seconds:.1f}s),"
        f" latency p50 {run.latency_ms(0.5):.1f} ms, p99 {run.latency_ms(0.99):.1f} ms"
        + (" — the requests ran out before the window's end" if run.exhausted else "")
    )
    print(f"    CPU (cores): {run.cpu.describe()}")
    if run.cpu.others > BUSY_MACHINE_CORES:
        print("    (other work ran on the machine meanwhile: this figure is disturbed)")


async def measure(running: stack.Stack, work: Path, options: IngestOptions) -> Results:
    """Bare endpoint, ingest, bare endpoint again, on the running stack; the figures."""
    tag = uuid.uuid4().hex[:10]
    log_dir = work / f"ingest-bench-{tag}"
    log_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = running.kafka_bootstrap_servers
    data = shared_data(repo_root())
    print(f"building and signing {options.requests:,} Meta webhook bodies ...", flush=True)
    corpus = bench_workload.read_twcs_sample(data)
    webhooks = build_webhooks(
        read_templates(data),
        corpus.customer_texts,
        options.requests,
        seed=options.seed,
        now=datetime.now(UTC),
    )
    requests = [signed_request(webhook.body) for webhook in webhooks]
    body_bytes = sum(len(webhook.body) for webhook in webhooks) / len(webhooks)

    database = await stack.ensure_database(running.database_url, f"casewire_bench_ingest_{tag}")
    env = {
        **os.environ,
        **running.env(),
        "CASEWIRE_DATABASE_URL": database,
        "CASEWIRE_META_APPS": json.dumps(
            [{"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}]
        ),
    }
    started: list[services.RunningService] = []
    try:
        await services.migrate("ingest", env, log_dir)
        ingest_port, bare_port = stack.free_ports(2)
        print("starting casewire-ingest serve and the bare ASGI endpoint ...", flush=True)
        ingest = services.start(services.ServiceSpec("ingest", ingest_port), env, log_dir)
        started.append(ingest)
        bare = _start_bare(bare_port, log_dir)
        started.append(bare)
        never = asyncio.Event()
        await asyncio.gather(services.wait_ready(ingest, never), services.wait_ready(bare, never))

        def watch_bare() -> dict[str, list[int]]:
            return {"bare-asgi": [bare.process.pid]}

        def watch_ingest() -> dict[str, list[int]]:
            return {
                "ingest": [ingest.process.pid],
                **stack_processes(running),
            }

        async def run_bare(round_: int) -> LoadRun:
            print(f"bare ASGI ({round_}/2): {options.connections} connections ...", flush=True)
            return await generate_load(
                "bare ASGI",
                bare_port,
                requests,
                connections=options.connections,
                warmup=options.warmup,
                seconds=options.bare_seconds,
                cycle=True,
                watch=watch_bare,
            )

        bare_before = await run_bare(1)
        print(f"ingest: {options.connections} connections ...", flush=True)
        ingested = await generate_load(
            "ingest",
            ingest_port,
            requests,
            connections=options.connections,
            warmup=options.warmup,
            seconds=options.seconds,
            cycle=False,
            watch=watch_ingest,
        )
        bare_after = await run_bare(2)
    except services.ServiceError as error:
        raise BenchError(str(error)) from error
    finally:
        killed = await services.stop_all(started)
        await stack.drop_database(running.database_url, database)
    if killed:
        print(f"warning: {', '.join(killed)} had to be killed", file=sys.stderr)
    raw, published = await _count_published(bootstrap, webhooks, ingested.sent)
    if not published == raw == ingested.answered == ingested.sent:
        raise BenchError(
            f"ingest answered 200 to {ingested.answered} of {ingested.sent} requests but the"
            " broker holds"
            f" {raw} raw bodies and {published} messages"
        )
    bare_rate = (bare_before.rate + bare_after.rate) / 2
    print(f"results ({options.connections} keep-alive connections, mean body {body_bytes:.0f} B):")
    for run in (bare_before, ingested, bare_after):
        _report(run)
    print(
        f"  bare spread {ratio(abs(bare_before.rate - bare_after.rate), bare_rate):.0%};"
        f" ingest published {published:,} messages and {raw:,} raw bodies for"
        f" {ingested.answered:,} answers (all 200)"
    )
    return {
        "ingest_requests_per_s": metric(ingested.rate, "req/s"),
        "bare_asgi_requests_per_s": metric(bare_rate, "req/s"),
        "ingest_vs_bare_asgi": metric(ratio(ingested.rate, bare_rate), "ratio"),
        "ingest_latency_p50_ms": metric(ingested.latency_ms(0.5), "ms"),
        "ingest_latency_p99_ms": metric(ingested.latency_ms(0.99), "ms"),
        "ingest_bench_connections": metric(options.connections, "count"),
        "ingest_bench_requests": metric(ingested.answered, "count"),
        "ingest_bench_body_bytes": metric(body_bytes, "bytes"),
    }


def run(running: stack.Stack, work: Path, options: IngestOptions | None = None) -> Results:
    """The ingest figures, measured on a running local stack (`stack.up`)."""
    return asyncio.run(measure(running, work, options or IngestOptions()))


if __name__ == "__main__":
    # `python -m casewire_dev.bench_ingest serve-bare PORT`: the bare endpoint's process.
    if len(sys.argv) == 3 and sys.argv[1] == "serve-bare":
        serve_bare(int(sys.argv[2]))
    else:
        sys.exit("usage: python -m casewire_dev.bench_ingest serve-bare PORT")
