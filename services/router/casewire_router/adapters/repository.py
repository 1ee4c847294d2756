"""The router's PostgreSQL state: cases, messages, agents and processed-message markers.

Every read and write here works on a whole batch at once (arrays, COPY and pipelined
`executemany`), so that a batch costs a handful of round trips, not a few per message.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from casewire_common.messages import CanonicalMessage
from casewire_common.pg import Connection

from casewire_router.domain.assignment import AgentState
from casewire_router.domain.routing import BatchOutcome, CaseState

SCHEMA = "router"
MIGRATIONS_PACKAGE = "casewire_router.adapters.migrations"

_CASE_COLUMNS = (
    "id",
    "conversation_id",
    "customer_id",
    "account_id",
    "platform",
    "channel",
    "visibility",
    "status",
    "priority",
    "urgency_score",
    "team",
    "assignee",
    "tags",
    "language",
    "opened_at",
    "first_response_at",
    "resolved_at",
)
_MESSAGE_COLUMNS = (
    "id",
    "case_id",
    "conversation_id",
    "platform",
    "platform_message_id",
    "direction",
    "author_id",
    "text",
    "language",
    "sent_at",
    "received_at",
    "body",
)


def processing_key(message: CanonicalMessage) -> str:
    """What makes a delivery 'the same' for the idempotent consumer."""
    if message.event == "message":
        return message.id
    if message.event == "edit":
        return f"{message.id}:edit:{message.sent_at.isoformat()}"
    return f"{message.id}:delete"


async def claim_new(
    connection: Connection, messages: Sequence[CanonicalMessage]
) -> list[CanonicalMessage]:
    """Mark the batch processed; returns the messages not processed before, in order."""
    first_by_key: dict[str, CanonicalMessage] = {}
    for message in messages:
        first_by_key.setdefault(processing_key(message), message)
    if not first_by_key:
        return []
    rows = await connection.fetch(
        f"INSERT INTO {SCHEMA}.processed_messages (key) SELECT unnest($1::text[])"
        " ON CONFLICT DO NOTHING RETURNING key",
        list(first_by_key),
    )
    fresh = {row["key"] for row in rows}
    return [message for key, message in first_by_key.items() if key in fresh]


async def lock_open_cases(
    connection: Connection, conversation_ids: Iterable[str]
) -> dict[str, CaseState]:
    rows = await connection.fetch(
        f"SELECT {', '.join(_CASE_COLUMNS)} FROM {SCHEMA}.cases"
        " WHERE conversation_id = ANY($1::text[]) AND status NOT IN ('resolved', 'no_action')"
        " ORDER BY id FOR UPDATE",
        list(set(conversation_ids)),
    )
    return {row["conversation_id"]: _case(row) for row in rows}


async def lock_agents(connection: Connection) -> dict[str, AgentState]:
    """All agents, locked in id order: assignment across replicas never over-fills anyone."""
    rows = await connection.fetch(
        f"SELECT id, teams, languages, capacity, online, load, last_assigned_at"
        f" FROM {SCHEMA}.agents ORDER BY id FOR UPDATE"
    )
    return {
        row["id"]: AgentState(
            id=row["id"],
            teams=list(row["teams"]),
            languages=list(row["languages"]),
            capacity=row["capacity"],
            online=row["online"],
            load=row["load"],
            last_assigned_at=row["last_assigned_at"],
        )
        for row in rows
    }


async def save_outcome(connection: Connection, outcome: BatchOutcome) -> None:
    opened = [case for case_id, case in outcome.cases.items() if case_id in outcome.opened]
    changed = [case for case_id, case in outcome.cases.items() if case_id not in outcome.opened]
    if opened:
        await connection.copy_records_to_table(
            "cases",
            schema_name=SCHEMA,
            columns=(*_CASE_COLUMNS, "decision"),
            records=[
                (*_case_row(case), case.decision.model_dump_json() if case.decision else None)
                for case in opened
            ],
        )
    if changed:
        # What routing may change on a case it did not open.
        await connection.executemany(
            f"UPDATE {SCHEMA}.cases SET status = $2, priority = $3, urgency_score = $4,"
            " team = $5, assignee = $6, tags = $7, language = $8, first_response_at = $9,"
            " resolved_at = $10, updated_at = now() WHERE id = $1",
            [
                (
                    case.id,
                    case.status,
                    case.priority,
                    case.urgency_score,
                    case.team,
                    case.assignee,
                    case.tags,
                    case.language,
                    case.first_response_at,
                    case.resolved_at,
                )
                for case in changed
            ],
        )
    if outcome.stored_messages:
        # No ON CONFLICT needed: a message is stored only by the transaction that claimed it
        # in processed_messages (`claim_new`), and its id is that claim's key.
        await connection.copy_records_to_table(
            "messages",
            schema_name=SCHEMA,
            columns=_MESSAGE_COLUMNS,
            records=[
                (
                    message.id,
                    case_id,
                    message.conversation_id,
                    message.platform,
                    message.platform_message_id,
                    message.direction,
                    message.author.id,
                    message.text,
                    message.language,
                    message.sent_at,
                    message.received_at,
                    message.model_dump_json(),
                )
                for message, case_id in outcome.stored_messages
            ],
        )
    edits = [message for message in outcome.edits if message.event == "edit"]
    deletes = [message for message in outcome.edits if message.event == "delete"]
    if edits:
        await connection.executemany(
            f"UPDATE {SCHEMA}.messages SET text = $2, edited_at = $3 WHERE id = $1",
            [(message.id, message.text, message.sent_at) for message in edits],
        )
    if deletes:
        await connection.executemany(
            f"UPDATE {SCHEMA}.messages SET deleted_at = $2 WHERE id = $1",
            [(message.id, message.sent_at) for message in deletes],
        )
    if outcome.agents:
        await connection.executemany(
            f"UPDATE {SCHEMA}.agents SET load = $2, last_assigned_at = $3 WHERE id = $1",
            [(agent.id, agent.load, agent.last_assigned_at) for agent in outcome.agents.values()],
        )


async def sync_agents(connection: Connection, agents: Sequence[dict[str, Any]]) -> None:
    """Make the agents table follow the agents file: teams, languages and capacity from the
    file; presence (`online`) from the file only for new agents (the HTTP API owns it later);
    agents no longer in the file go offline and keep their open cases."""
    async with connection.transaction():
        await connection.executemany(
            f"INSERT INTO {SCHEMA}.agents (id, teams, languages, capacity, online)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO UPDATE SET teams = EXCLUDED.teams,"
            " languages = EXCLUDED.languages, capacity = EXCLUDED.capacity",
            [
                (a["id"], a["teams"], a.get("languages", []), a["capacity"], a.get("online", False))
                for a in agents
            ],
        )
        await connection.execute(
            f"UPDATE {SCHEMA}.agents SET online = false WHERE NOT (id = ANY($1::text[]))",
            [a["id"] for a in agents],
        )


def _case(row: asyncpg.Record) -> CaseState:
    return CaseState(
        id=str(row["id"]),
        conversation_id=row["conversation_id"],
        customer_id=row["customer_id"],
        account_id=row["account_id"],
        platform=row["platform"],
        channel=row["channel"],
        visibility=row["visibility"],
        status=row["status"],
        priority=row["priority"],
        urgency_score=row["urgency_score"],
        team=row["team"],
        assignee=row["assignee"],
        tags=list(row["tags"]),
        language=row["language"],
        opened_at=row["opened_at"],
        first_response_at=row["first_response_at"],
        resolved_at=row["resolved_at"],
    )


def _case_row(case: CaseState) -> tuple[Any, ...]:
    return (
        case.id,
        case.conversation_id,
        case.customer_id,
        case.account_id,
        case.platform,
        case.channel,
        case.visibility,
        case.status,
        case.priority,
        case.urgency_score,
        case.team,
        case.assignee,
        case.tags,
        case.language,
        case.opened_at,
        case.first_response_at,
        case.resolved_at,
    )
