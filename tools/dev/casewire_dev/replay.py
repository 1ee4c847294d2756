"""Replay corpus conversations through ingest's generic endpoint on an accelerated clock.

Conversations open one after another every `arrival_seconds`; inside a conversation the
original gaps between tweets shrink by `speed`. Each message is sent with `sent_at` = the
moment it is actually posted, so the services' SLA clocks run in real time against the
compressed corpus time (at 60×, one minute of the demo is one hour of the corpus).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from casewire_dev.corpus import Conversation, CorpusMessage

POST_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 0.5


@dataclass(frozen=True)
class ScheduledMessage:
    """A corpus message and when to post it, in seconds after the replay starts."""

    at: float
    conversation: Conversation
    message: CorpusMessage
    opening: bool  # the conversation's first message: a mention; the rest are replies


def schedule(
    conversations: Sequence[Conversation], *, speed: float, arrival_seconds: float
) -> list[ScheduledMessage]:
    """Every message of every conversation, in posting order."""
    if speed <= 0 or arrival_seconds < 0:
        raise ValueError("speed must be positive and arrival_seconds not negative")
    keyed: list[tuple[float, int, int, ScheduledMessage]] = []
    for index, conversation in enumerate(conversations):
        start = index * arrival_seconds
        first_sent = conversation.messages[0].sent_at
        at = start
        for position, message in enumerate(conversation.messages):
            # Never earlier than the message before: a conversation is posted in order.
            at = max(at, start + (message.sent_at - first_sent).total_seconds() / speed)
            item = ScheduledMessage(at, conversation, message, opening=position == 0)
            keyed.append((at, index, position, item))
    keyed.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in keyed]


def message_body(item: ScheduledMessage, sent_at: datetime) -> dict[str, Any]:
    """The generic-channel JSON for one scheduled message (ingest derives id and visibility)."""
    conversation, message = item.conversation, item.message
    return {
        "platform": "x",
        "channel": "mention" if item.opening else "reply",
        "direction": "inbound" if message.inbound else "outbound",
        "account_id": conversation.brand,
        "platform_message_id": message.tweet_id,
        "conversation_id": conversation.conversation_id,
        "in_reply_to": message.in_reply_to,
        "author": {"id": message.author_id, "handle": message.author_handle},
        "text": message.text,
        "sent_at": sent_at.isoformat(),
    }


@dataclass
class ReplayProgress:
    """What the replayer has done so far, for the live summary."""

    planned: int
    posted: int = 0
    rejected: int = 0
    last_rejection: str | None = None
    finished: bool = False
    lag_seconds: float = 0.0  # how far behind its schedule the replayer runs


async def replay(
    plan: Sequence[ScheduledMessage],
    ingest_url: str,
    integration: httpx.Auth,
    progress: ReplayProgress,
) -> None:
    """Post the plan to ingest, each message at its time, until done or cancelled.

    Posting is sequential so that a conversation's messages reach ingest in order; a 503 or a
    connection error is retried briefly, as a platform would redeliver a webhook.
    """
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=ingest_url, timeout=15.0, auth=integration) as client:
        started = loop.time()
        for item in plan:
            delay = started + item.at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            progress.lag_seconds = max(0.0, -delay)
            await _post(client, item, progress)
    progress.finished = True


async def _post(
    client: httpx.AsyncClient, item: ScheduledMessage, progress: ReplayProgress
) -> None:
    status, reason = 0, ""
    for attempt in range(POST_ATTEMPTS):
        if attempt:
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
        try:
            response = await client.post("/v1/messages", json=message_body(item, datetime.now(UTC)))
        except httpx.TransportError as error:
            status, reason = 0, type(error).__name__
            continue
        if response.status_code == 202:
            progress.posted += 1
            return
        status, reason = response.status_code, response.text[:200]
        if response.status_code != 503:
            break
    progress.rejected += 1
    progress.last_rejection = f"{item.message.tweet_id}: {status or 'no answer'} {reason}"
