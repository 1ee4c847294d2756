"""The router's PostgreSQL state: cases, messages, agents; which messages were processed.

Every read and write here works on a whole batch at once (arrays, COPY and pipelined
`executemany`), so that a batch costs a handful of round trips, not a few per message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
from casewire_common import events as ev
from casewire_common.messages import CanonicalMessage
from casewire_common.pg import Connection, Database, pending_migrations
from casewire_common.thread_control import ThreadControl
from casewire_common.unit_of_work import AgedTable, UnitOfWork

from casewire_router.domain.assignment import AgentScope, AgentState
from casewire_router.domain.batch import BatchState, MessageReading, QuietIncident, TopicState
from casewire_router.domain.case import CLOSED_STATUSES, CaseState, CaseWindows, customer_key
from casewire_router.domain.deliveries import Routable, processing_key
from casewire_router.domain.handover import (
    NO_MARKS,
    ConversationControl,
    DeliveryMarks,
    Handover,
    HandoverPolicy,
)
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.routing import CaseRouter
from casewire_router.domain.sentiment import LABELS, Sentiment

SCHEMA = "router"
# Pruned with the processed markers (CASEWIRE_PROCESSED_RETENTION): an escalation is remembered
# for its retraction, which comes minutes after the breach; a handover until a later one of its
# conversation took over (the latest stays: it says who answers the conversation).
PRUNED_WITH_MARKERS = (
    AgedTable(SCHEMA, "escalations", "escalated_at"),
    AgedTable(SCHEMA, "handovers", "superseded_at"),
)
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
    "queued_at",
    "version",
    "sentiment_label",
    "sentiment_score",
    "worst_sentiment_label",
    "worst_sentiment_score",
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
    "bot_phase",
    "standby",
    "sending_app",
)


async def claim_new(work: UnitOfWork, messages: Sequence[Routable]) -> list[Routable]:
    """Mark the batch processed; returns the messages (and thread-control records) not
    processed before, in order."""
    return await work.claim(messages, processing_key)


_OPEN = "status NOT IN ('resolved', 'no_action')"
RECENT_HITS_COUNTED = 100  # beyond this a burst is a burst: see `_load_topics`
RECENT_CONTACTS_LOADED = 20  # a customer's earlier messages read for the repeat-contact signal


async def load_batch_state(
    connection: Connection,
    items: Sequence[Routable],
    case_router: CaseRouter,
    windows: CaseWindows,
    now: datetime,
    readings: Mapping[str, MessageReading] | None = None,
) -> BatchState:
    """Lock and load what routing `items` may read or change, always in the same order
    (customers and answered messages, cases, orphan replies, crisis topics, cases on them,
    agents) so replicas never deadlock in the common case and serialize where they must: one
    customer's conversations, a message and the replies to it, one topic.
    `readings`: the customer messages' texts already read (`CaseRouter.read_customer_messages`).
    Thread-control records, and messages of conversations a chatbot may answer, also load
    those conversations' handovers and waiting transcripts (`_load_controls`)."""
    messages = [item for item in items if isinstance(item, CanonicalMessage)]
    controls = [item for item in items if isinstance(item, ThreadControl)]
    policy = case_router.handover
    handed = sorted(
        {
            item.conversation_id
            for item in items
            if isinstance(item, ThreadControl) or policy.applies(item.platform, item.account_id)
        }
    )
    loaded: dict[str, CaseState] = {}  # one object per case row, however it was reached

    def known(row: asyncpg.Record) -> CaseState:
        case_id = str(row["id"])
        if case_id not in loaded:
            loaded[case_id] = read_case(row)
        return loaded[case_id]

    state = BatchState()
    customer_messages = [m for m in messages if m.event == "message" and m.direction == "inbound"]
    customers = sorted({customer_key(m) for m in customer_messages})
    # A message and one answering it may be processed at the same moment by two replicas
    # (different conversation keys, so different partitions): each message takes its own lock
    # and the lock of the message it answers, so the later one sees what the earlier one
    # stored (a brand reply finds the case of its message, or a customer's answer to it; a
    # customer's answer finds the reply's case). One customer's messages already serialize on
    # the customer's lock. (A reply in its message's own conversation comes in order.)
    chained = sorted(
        {(m.platform, m.platform_message_id) for m in messages if m.event == "message"}
        | {
            (m.platform, m.in_reply_to)
            for m in messages
            if m.event == "message" and m.in_reply_to is not None
        }
    )
    lock_keys = ["\x1f".join(key) for key in customers]
    lock_keys += ["\x1f".join(("message", *key)) for key in chained]
    lock_keys += [f"handover\x1f{conversation}" for conversation in handed]
    if lock_keys:
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 1)) FROM unnest($1::text[]) k",
            lock_keys,
        )
    conversations = sorted({m.conversation_id for m in messages} | set(handed))
    for row in await connection.fetch(
        f"SELECT l.conversation_id AS via, {_CASE_SELECT} FROM {SCHEMA}.case_conversations l"
        f" JOIN {SCHEMA}.cases c ON c.id = l.case_id"
        f" WHERE l.conversation_id = ANY($1::text[]) AND c.{_OPEN} ORDER BY c.id FOR UPDATE OF c",
        conversations,
    ):
        state.open_cases[row["via"]] = known(row)
    newcomers = [m for m in customer_messages if m.conversation_id not in state.open_cases]
    if newcomers:
        earliest = min(m.sent_at for m in newcomers)
        keys = sorted({customer_key(m) for m in newcomers})
        for row in await connection.fetch(
            f"SELECT {_CASE_SELECT} FROM {SCHEMA}.cases c"
            " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(platform, account, customer)"
            " ON c.platform = k.platform AND c.account_id = k.account"
            f" AND c.customer_id = k.customer WHERE (c.{_OPEN}"
            " OR (c.status = 'resolved' AND c.resolved_at > $5))"
            " AND c.opened_at >= $4 ORDER BY c.id FOR UPDATE OF c",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            earliest - windows.merge,
            earliest,
        ):
            case = known(row)
            by_customer = (
                state.closed_by_customer
                if case.status in CLOSED_STATUSES
                else state.open_by_customer
            )
            by_customer.setdefault((case.platform, case.account_id, case.customer_id), []).append(
                case
            )
        for cases in [*state.open_by_customer.values(), *state.closed_by_customer.values()]:
            cases.sort(key=lambda case: case.opened_at)
    # The last resolved case of conversations with none open: a customer message may reopen
    # it, and a late message or brand reply sent before it was resolved joins it.
    unopened = [
        m for m in messages if m.event == "message" and m.conversation_id not in state.open_cases
    ]
    if unopened:
        earliest = min(m.sent_at for m in unopened)
        for row in await connection.fetch(
            f"SELECT l.conversation_id AS via, {_CASE_SELECT} FROM {SCHEMA}.cases c"
            f" JOIN {SCHEMA}.case_conversations l ON l.case_id = c.id"
            " WHERE c.id IN ("
            f"   SELECT DISTINCT ON (l2.conversation_id) r.id FROM {SCHEMA}.case_conversations l2"
            f"   JOIN {SCHEMA}.cases r ON r.id = l2.case_id"
            "   WHERE l2.conversation_id = ANY($1::text[]) AND r.status = 'resolved'"
            "   AND r.resolved_at >= $2"
            f"   AND NOT EXISTS (SELECT 1 FROM {SCHEMA}.cases o"
            f"     WHERE o.conversation_id = r.conversation_id AND o.{_OPEN})"
            "   ORDER BY l2.conversation_id, r.resolved_at DESC)"
            " AND l.conversation_id = ANY($1::text[]) ORDER BY c.id FOR UPDATE OF c",
            sorted({m.conversation_id for m in unopened}),
            earliest - windows.reopen,
        ):
            state.resolved[row["via"]] = known(row)
    if customer_messages:
        # Each customer's messages sent in the repeat-contact window before any of the batch's
        # (the latest few: the urgency signal is saturated long before), aggregated from one
        # join: a LIMIT per customer invites a scan of every inbound message by time. The
        # direction is filtered in the aggregate, not in WHERE, so that the partial index of
        # inbound messages by sending time (for reports) is no candidate: on tables not yet
        # analyzed the planner took it and read the whole window's messages every batch
        # (26 ms a batch at 5,000 messages in bench --only e2e); the customers' cases and
        # `messages_case` read a few rows whatever the statistics say.
        for row in await connection.fetch(
            "SELECT c.platform, c.account_id, c.customer_id,"
            " (array_agg(m.sent_at ORDER BY m.sent_at DESC)"
            " FILTER (WHERE m.direction = 'inbound'))[1:$6] AS times"
            f" FROM {SCHEMA}.cases c JOIN {SCHEMA}.messages m ON m.case_id = c.id"
            " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(platform, account, customer)"
            " ON c.platform = k.platform AND c.account_id = k.account"
            " AND c.customer_id = k.customer"
            " WHERE m.sent_at >= $4 AND m.sent_at < $5"
            " GROUP BY c.platform, c.account_id, c.customer_id"
            " HAVING bool_or(m.direction = 'inbound')",
            [k[0] for k in customers],
            [k[1] for k in customers],
            [k[2] for k in customers],
            min(m.sent_at for m in customer_messages) - windows.repeat_contact,
            max(m.sent_at for m in customer_messages),
            RECENT_CONTACTS_LOADED,
        ):
            customer = (row["platform"], row["account_id"], row["customer_id"])
            state.contact_times[customer] = list(row["times"])
    replies = sorted(
        {
            (m.platform, m.in_reply_to)
            for m in messages
            if m.event == "message"
            and m.in_reply_to is not None
            and m.conversation_id not in state.open_cases
        }
    )
    if replies:
        for row in await connection.fetch(
            f"SELECT m.platform AS replied_platform, m.platform_message_id AS replied_id,"
            f" {_CASE_SELECT}"
            f" FROM {SCHEMA}.messages m JOIN {SCHEMA}.cases c ON c.id = m.case_id"
            " JOIN unnest($1::text[], $2::text[]) AS r(platform, id)"
            " ON m.platform = r.platform AND m.platform_message_id = r.id"
            " ORDER BY c.id FOR UPDATE OF c",
            [platform for platform, _ in replies],
            [replied for _, replied in replies],
        ):
            # Closed ones too: a message sent before its case closed still belongs to it.
            key = (row["replied_platform"], row["replied_id"])
            state.cases_by_message[key] = known(row)
    updated = sorted({m.id for m in messages if m.event != "message"})
    if updated:
        # The cases, open or closed, of the messages edited or deleted: their events follow.
        for row in await connection.fetch(
            f"SELECT m.platform AS updated_platform, m.platform_message_id AS updated_id,"
            f" {_CASE_SELECT} FROM {SCHEMA}.messages m JOIN {SCHEMA}.cases c ON c.id = m.case_id"
            " WHERE m.id = ANY($1::uuid[]) ORDER BY c.id FOR UPDATE OF c",
            updated,
        ):
            key = (row["updated_platform"], row["updated_id"])
            state.cases_by_message[key] = known(row)
    if handed:
        await _load_controls(connection, state, handed, policy)
    # Brand replies waiting for the customer messages they answer; a handover to humans (a
    # pass, or a bot account's handoff message) opens a case too, at its time, which takes the
    # replies sent after it in its conversation.
    handing: list[Routable] = [c for c in controls if policy.owner_after(c) == "human"]
    handing += [m for m in messages if policy.bot_first(m.platform, m.account_id)]
    if customer_messages or handing:
        await _load_orphan_replies(
            connection,
            state,
            sorted({m.platform_message_id for m in customer_messages}),
            sorted({m.conversation_id for m in [*customer_messages, *handing]}),
            min(m.sent_at for m in [*customer_messages, *handing]),
        )
    await _load_split_chains(
        connection, state, [m for m in messages if m.event == "message"], known
    )
    topic_counts: dict[str, int] = {}
    for message in customer_messages:
        for topic in case_router.crisis_topics(message, readings):
            topic_counts[topic] = topic_counts.get(topic, 0) + 1
    if topic_counts:
        await _load_topics(connection, state, topic_counts, windows, now, known, list(loaded))
    handing_over = (
        case_router.handover_agents_needed(items, state, readings) if handed else AgentScope.of()
    )
    if (
        state.cases_answering
        or any(m.conversation_id not in state.open_cases for m in customer_messages)
        or handing_over.teams
    ):
        # A case may open or reopen (it may be given to an agent), or be absorbed (its owner's
        # load released): the agents it can reach, in one statement. A handover's case goes to
        # the team its whole transcript decides: the agents of every team it can reach.
        scope = case_router.agents_needed(
            customer_messages, loaded.values(), state.open_cases, readings
        ).union(handing_over)
        state.agents = await lock_agents(connection, scope)
    return state


async def _load_orphan_replies(
    connection: Connection,
    state: BatchState,
    answered: Sequence[str],
    conversations: Sequence[str],
    since: datetime,
) -> None:
    """Brand replies stored without a case that may answer the customer messages (naming one
    of `answered`, or in one of `conversations`, sent at or after `since`), locked: only one
    transaction attaches a reply. Both lookups use a partial index of the orphans. A bot's
    messages (its transcript) are never replies."""
    rows = await connection.fetch(
        f"SELECT body FROM {SCHEMA}.messages o"
        " WHERE o.case_id IS NULL AND o.direction = 'outbound' AND o.sent_at >= $3"
        " AND (o.body->>'in_reply_to' = ANY($1::text[]) OR o.conversation_id = ANY($2::text[]))"
        " AND NOT o.bot_phase ORDER BY o.id FOR UPDATE OF o",
        answered,
        conversations,
        since,
    )
    for row in rows:
        state.orphan_replies.add(CanonicalMessage.model_validate_json(row["body"]))


async def _load_controls(
    connection: Connection, state: BatchState, conversations: Sequence[str], policy: HandoverPolicy
) -> None:
    """The conversations' handovers (with when the case each opened was closed) and their
    transcripts still waiting for a case, locked (a handover attaches them once)."""
    for row in await connection.fetch(
        "SELECT h.conversation_id, h.source_id, h.at, h.owner, h.reason, h.app_id, h.metadata,"
        " h.case_id::text AS case_id, c.status, c.resolved_at"
        f" FROM {SCHEMA}.handovers h LEFT JOIN {SCHEMA}.cases c ON c.id = h.case_id"
        " WHERE h.conversation_id = ANY($1::text[]) ORDER BY h.conversation_id, h.at, h.source_id",
        conversations,
    ):
        closed = row["status"] in CLOSED_STATUSES
        state.controls.setdefault(row["conversation_id"], ConversationControl()).add(
            Handover(
                conversation_id=row["conversation_id"],
                at=row["at"],
                owner=row["owner"],
                reason=row["reason"],
                source_id=row["source_id"],
                app_id=row["app_id"],
                metadata=row["metadata"],
                case_id=row["case_id"],
                case_closed_at=(row["resolved_at"] or row["at"]) if closed else None,
            )
        )
    for row in await connection.fetch(
        f"SELECT body, standby, sending_app FROM {SCHEMA}.messages"
        " WHERE conversation_id = ANY($1::text[]) AND bot_phase AND case_id IS NULL"
        " ORDER BY sent_at, id FOR UPDATE",
        conversations,
    ):
        message = CanonicalMessage.model_validate_json(row["body"])
        state.controls.setdefault(message.conversation_id, ConversationControl()).wait(
            message, DeliveryMarks(row["standby"], row["sending_app"])
        )


async def _load_split_chains(
    connection: Connection,
    state: BatchState,
    messages: Sequence[CanonicalMessage],
    known: Callable[[asyncpg.Record], CaseState],
) -> None:
    """The open cases of the same customer holding a customer message that answers one of
    the batch's messages or of the orphan replies that may attach: a reply chain split in two
    by processing order, merged when its earlier part gets a case. Locked; by a partial index
    of the customers' answers."""
    answered = {
        (m.platform, m.account_id, m.customer_id, m.platform_message_id)
        for m in [*messages, *state.orphan_replies]
    }
    if not answered:
        return
    keys = sorted(answered)
    for row in await connection.fetch(
        f"SELECT a.answered, {_CASE_SELECT} FROM {SCHEMA}.messages m"
        " JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[])"
        " AS a(platform, account, customer, answered)"
        " ON m.platform = a.platform AND m.body->>'in_reply_to' = a.answered"
        f" JOIN {SCHEMA}.cases c ON c.id = m.case_id AND c.account_id = a.account"
        " AND c.customer_id = a.customer"
        " WHERE m.direction = 'inbound' AND m.body->>'in_reply_to' IS NOT NULL"
        f" AND c.{_OPEN} ORDER BY c.id FOR UPDATE OF c",
        [key[0] for key in keys],
        [key[1] for key in keys],
        [key[2] for key in keys],
        [key[3] for key in keys],
    ):
        case = known(row)
        answering = state.cases_answering.setdefault((case.platform, row["answered"]), [])
        if all(held is not case for held in answering):
            answering.append(case)


async def _load_topics(
    connection: Connection,
    state: BatchState,
    batch_counts: dict[str, int],
    windows: CaseWindows,
    now: datetime,
    known: Callable[[asyncpg.Record], CaseState],
    loaded_case_ids: list[str],
) -> None:
    """The recent past of the batch's crisis topics; one transaction at a time per topic."""
    topics = sorted(batch_counts)
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('topic:' || t, 1))"
        " FROM unnest($1::text[]) t",
        topics,
    )
    since = now - windows.incident
    # An incident quiet for a whole window is over: the next burst opens a new one. Closed
    # here when a message comes before the timer (`close_quiet_incidents`) saw it.
    state.quiet_incidents = [
        _quiet_incident(row)
        for row in await connection.fetch(
            f"UPDATE {SCHEMA}.incidents i SET status = 'closed' WHERE topic = ANY($1::text[])"
            f" AND status = 'open' AND last_seen_at < $2 RETURNING {_QUIET_INCIDENT}",
            topics,
            since,
        )
    ]
    for topic in topics:
        state.topics[topic] = TopicState()
    for row in await connection.fetch(
        f"SELECT i.id, i.topic, i.opened_at, (SELECT count(*) FROM {SCHEMA}.incident_cases ic"
        " WHERE ic.incident_id = i.id) AS cases"
        f" FROM {SCHEMA}.incidents i WHERE i.topic = ANY($1::text[]) AND i.status = 'open'",
        topics,
    ):
        topic_state = state.topics[row["topic"]]
        topic_state.incident_id = str(row["id"])
        topic_state.opened_at = row["opened_at"]
        topic_state.incident_case_count = row["cases"]
    # Hits older than the window count for nothing: the table holds one window at most.
    await connection.execute(
        f"DELETE FROM {SCHEMA}.topic_hits WHERE topic = ANY($1::text[]) AND at < $2",
        topics,
        since,
    )
    # How many recent messages hit the topic (the burst signal), counted up to a cap: the
    # signal is saturated long before, and a sustained burst must not cost more each batch.
    for row in await connection.fetch(
        "SELECT t.topic, (SELECT count(*) FROM (SELECT 1"
        f" FROM {SCHEMA}.topic_hits h WHERE h.topic = t.topic AND h.at >= $2 LIMIT $3) AS x)"
        " AS hits FROM unnest($1::text[]) AS t(topic)",
        topics,
        since,
        RECENT_HITS_COUNTED,
    ):
        state.topics[row["topic"]].recent_count = row["hits"]
    # Case ids only where no incident is open: fewer than the threshold, or one would be.
    quiet = [topic for topic in topics if state.topics[topic].incident_id is None]
    if quiet:
        for row in await connection.fetch(
            f"SELECT topic, array_agg(DISTINCT case_id ORDER BY case_id) AS case_ids"
            f" FROM {SCHEMA}.topic_hits WHERE topic = ANY($1::text[]) AND at >= $2"
            " GROUP BY topic",
            quiet,
            since,
        ):
            state.topics[row["topic"]].recent_case_ids = [str(c) for c in row["case_ids"]]
    incidents = {
        topic_state.incident_id: topic_state
        for topic_state in state.topics.values()
        if topic_state.incident_id is not None
    }
    if incidents and loaded_case_ids:
        # Which of the cases this batch can touch an open incident already links.
        for row in await connection.fetch(
            f"SELECT incident_id, case_id FROM {SCHEMA}.incident_cases"
            " WHERE incident_id = ANY($1::uuid[]) AND case_id = ANY($2::uuid[])",
            list(incidents),
            loaded_case_ids,
        ):
            incidents[str(row["incident_id"])].incident_case_ids.add(str(row["case_id"]))
    # Cases a new incident would link (and raise): where the burst can reach the threshold.
    linkable = sorted(
        {
            case_id
            for topic in quiet
            if len(state.topics[topic].recent_case_ids) + batch_counts[topic]
            >= windows.incident_threshold
            for case_id in state.topics[topic].recent_case_ids
        }
    )
    if linkable:
        rows = await connection.fetch(
            f"SELECT {_CASE_SELECT} FROM {SCHEMA}.cases c WHERE c.id = ANY($1::uuid[])"
            f" AND c.{_OPEN} ORDER BY c.id FOR UPDATE OF c",
            linkable,
        )
        by_id = {str(row["id"]): known(row) for row in rows}
        for topic in quiet:
            topic_state = state.topics[topic]
            topic_state.open_cases = {
                case_id: by_id[case_id]
                for case_id in topic_state.recent_case_ids
                if case_id in by_id
            }


_QUIET_INCIDENT = (
    "i.id, i.topic, i.opened_at, i.last_seen_at,"
    f" (SELECT count(*) FROM {SCHEMA}.incident_cases c WHERE c.incident_id = i.id) AS cases"
)


def _quiet_incident(row: asyncpg.Record) -> QuietIncident:
    return QuietIncident(
        incident_id=str(row["id"]),
        topic=row["topic"],
        opened_at=row["opened_at"],
        last_seen_at=row["last_seen_at"],
        case_count=row["cases"],
    )


async def close_quiet_incidents(connection: Connection, since: datetime) -> list[QuietIncident]:
    """Close the open incidents last seen before `since`, whatever the traffic. Safe beside
    other replicas and the message path: an incident another transaction holds (its row, or
    its topic's lock, which the message path takes before reading the topic's incident) is
    left to it."""
    candidates = await connection.fetch(
        f"SELECT id, topic FROM {SCHEMA}.incidents WHERE status = 'open' AND last_seen_at < $1"
        " ORDER BY id FOR UPDATE SKIP LOCKED",
        since,
    )
    free = [
        row["id"]
        for row in candidates
        if await connection.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended('topic:' || $1::text, 1))",
            row["topic"],
        )
    ]
    if not free:
        return []
    rows = await connection.fetch(
        f"UPDATE {SCHEMA}.incidents i SET status = 'closed' WHERE id = ANY($1::uuid[])"
        f" RETURNING {_QUIET_INCIDENT}",
        free,
    )
    return [_quiet_incident(row) for row in rows]


_SELECT_AGENTS = (
    f"SELECT id, teams, languages, capacity, online, load, last_assigned_at FROM {SCHEMA}.agents"
)


async def lock_agents(connection: Connection, scope: AgentScope) -> dict[str, AgentState]:
    """The agents of `scope`, locked in one statement in id order: assignment across replicas
    and API calls never over-fills anyone, and a batch or an action of one team does not wait
    for another team's."""
    rows = await connection.fetch(
        f"{_SELECT_AGENTS} WHERE id = ANY($2::text[]) OR teams && ($1::text[] || coalesce("
        f"(SELECT array_agg(t) FROM {SCHEMA}.agents o CROSS JOIN unnest(o.teams) t"
        " WHERE o.id = ANY($2::text[])), '{}'))"
        " ORDER BY id FOR UPDATE",
        sorted(scope.teams),
        sorted(scope.agent_ids),
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


async def save_outcome(connection: Connection, outcome: RoutingOutcome, now: datetime) -> None:
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
        # What routing may change on a case it did not open: one statement for all of them
        # (a row per case costs PostgreSQL a statement each). Tags go as JSON, one text per
        # case: an array of arrays cannot be unnested by rows.
        await connection.execute(
            f"UPDATE {SCHEMA}.cases c SET status = u.status, priority = u.priority,"
            " urgency_score = u.urgency_score, team = u.team, assignee = u.assignee,"
            " tags = ARRAY(SELECT jsonb_array_elements_text(u.tags::jsonb)),"
            " language = u.language, first_response_at = u.first_response_at,"
            " resolved_at = u.resolved_at, queued_at = u.queued_at, version = u.version,"
            " opened_at = u.opened_at, sentiment_label = u.sentiment_label,"
            " sentiment_score = u.sentiment_score,"
            " worst_sentiment_label = u.worst_sentiment_label,"
            " worst_sentiment_score = u.worst_sentiment_score, updated_at = now()"
            " FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[],"
            " $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[],"
            " $11::timestamptz[], $12::int[], $13::timestamptz[], $14::text[], $15::real[],"
            " $16::text[], $17::real[]) AS u(id, status, priority,"
            " urgency_score, team, assignee, tags, language, first_response_at, resolved_at,"
            " queued_at, version, opened_at, sentiment_label, sentiment_score,"
            " worst_sentiment_label, worst_sentiment_score) WHERE c.id = u.id",
            [case.id for case in changed],
            [case.status for case in changed],
            [case.priority for case in changed],
            [case.urgency_score for case in changed],
            [case.team for case in changed],
            [case.assignee for case in changed],
            [json.dumps(case.tags) for case in changed],
            [case.language for case in changed],
            [case.first_response_at for case in changed],
            [case.resolved_at for case in changed],
            [case.queued_at for case in changed],
            [case.version for case in changed],
            [case.opened_at for case in changed],
            [case.sentiment.label if case.sentiment else None for case in changed],
            [case.sentiment.score if case.sentiment else None for case in changed],
            [case.worst_sentiment.label if case.worst_sentiment else None for case in changed],
            [case.worst_sentiment.score if case.worst_sentiment else None for case in changed],
        )
    if outcome.stored_messages:
        # A message routed twice in one batch (transcript first, then again after a handover
        # read late showed humans had it) is stored as it ended; one stored by an earlier batch
        # (`rerouted`) is updated.
        final = {message.id: (message, case_id) for message, case_id in outcome.stored_messages}
        fresh = [row for message_id, row in final.items() if message_id not in outcome.rerouted]
        if fresh:
            await store_messages(connection, fresh, outcome.bot_phase, outcome.marks)
        rerouted = [row for message_id, row in final.items() if message_id in outcome.rerouted]
        if rerouted:
            await connection.execute(
                f"UPDATE {SCHEMA}.messages m SET case_id = r.case_id, bot_phase = false"
                " FROM unnest($1::uuid[], $2::uuid[]) AS r(id, case_id) WHERE m.id = r.id",
                [message.id for message, _ in rerouted],
                [case_id for _, case_id in rerouted],
            )
    if outcome.transcripts:
        # After the COPY: a transcript message may have been stored earlier in this batch.
        await connection.execute(
            f"UPDATE {SCHEMA}.messages m SET case_id = t.case_id"
            " FROM unnest($1::uuid[], $2::uuid[]) AS t(id, case_id) WHERE m.id = t.id",
            [message_id for message_id, _ in outcome.transcripts],
            [case_id for _, case_id in outcome.transcripts],
        )
    if outcome.handovers:
        handovers = {(h.conversation_id, h.source_id): h for h in outcome.handovers}
        await connection.executemany(
            f"INSERT INTO {SCHEMA}.handovers (conversation_id, source_id, at, owner, reason,"
            " app_id, metadata, case_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (conversation_id, source_id) DO UPDATE SET case_id = EXCLUDED.case_id",
            [
                (
                    h.conversation_id,
                    h.source_id,
                    h.at,
                    h.owner,
                    h.reason,
                    h.app_id,
                    h.metadata,
                    h.case_id,
                )
                for h in handovers.values()
            ],
        )
        # Each handover is superseded by the next of its conversation (a late one may come
        # between two): the pruner goes by it. The batch holds these conversations' locks.
        await connection.execute(
            f"UPDATE {SCHEMA}.handovers h SET superseded_at = n.next_at FROM ("
            " SELECT conversation_id, source_id, lead(at)"
            " OVER (PARTITION BY conversation_id ORDER BY at, source_id) AS next_at"
            f" FROM {SCHEMA}.handovers WHERE conversation_id = ANY($1::text[])) n"
            " WHERE h.conversation_id = n.conversation_id AND h.source_id = n.source_id"
            " AND h.superseded_at IS DISTINCT FROM n.next_at",
            sorted({h.conversation_id for h in handovers.values()}),
        )
    if outcome.attached_replies:
        # After the COPY: a reply may have been stored as an orphan earlier in this batch.
        await connection.execute(
            f"UPDATE {SCHEMA}.messages m SET case_id = a.case_id"
            " FROM unnest($1::uuid[], $2::uuid[]) AS a(id, case_id) WHERE m.id = a.id",
            [reply.id for reply, _ in outcome.attached_replies],
            [case_id for _, case_id in outcome.attached_replies],
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
    if outcome.links:
        await connection.execute(
            f"INSERT INTO {SCHEMA}.case_conversations (conversation_id, case_id)"
            " SELECT * FROM unnest($1::text[], $2::uuid[]) ON CONFLICT DO NOTHING",
            [conversation for conversation, _ in outcome.links],
            [case_id for _, case_id in outcome.links],
        )
    if outcome.absorbed:
        # After the batch's messages and links, some of which may be the absorbed case's; in
        # the order merged, so that a chain absorbed twice ends on the last case kept.
        await connection.executemany(
            f"WITH moved AS (UPDATE {SCHEMA}.messages SET case_id = $2 WHERE case_id = $1),"
            f" unlinked AS (DELETE FROM {SCHEMA}.case_conversations WHERE case_id = $1"
            " RETURNING conversation_id)"
            f" INSERT INTO {SCHEMA}.case_conversations (conversation_id, case_id)"
            " SELECT conversation_id, $2 FROM unlinked ON CONFLICT DO NOTHING",
            outcome.absorbed,
        )
    if outcome.topic_hits:
        await _save_topic_hits(connection, outcome, now)
    if outcome.agents:
        await connection.executemany(
            f"UPDATE {SCHEMA}.agents SET load = $2, last_assigned_at = $3 WHERE id = $1",
            [(agent.id, agent.load, agent.last_assigned_at) for agent in outcome.agents.values()],
        )


async def store_messages(
    connection: Connection,
    stored: Sequence[tuple[CanonicalMessage, str | None]],
    bot_phase: Collection[str] = (),
    marks: Mapping[str, DeliveryMarks] | None = None,
) -> None:
    """Messages with their case (None: a brand message with no open case, or the bot's
    transcript waiting for one), in one COPY; `bot_phase`: the ids of the bot's transcript;
    `marks`: how ingest delivered them.

    No ON CONFLICT needed: a message is stored only by the transaction that claimed it
    (`claim_new`), or made it (a reply recorded through the API)."""
    delivered = marks or {}
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
                message.id in bot_phase,
                delivered.get(message.id, NO_MARKS).standby,
                delivered.get(message.id, NO_MARKS).app_id,
            )
            for message, case_id in stored
        ],
    )


async def _save_topic_hits(connection: Connection, outcome: RoutingOutcome, now: datetime) -> None:
    await connection.execute(
        f"INSERT INTO {SCHEMA}.topic_hits (topic, case_id, at)"
        " SELECT t, c, $3 FROM unnest($1::text[], $2::uuid[]) AS h(t, c)",
        [topic for topic, _ in outcome.topic_hits],
        [case_id for _, case_id in outcome.topic_hits],
        now,
    )
    for change in outcome.incidents:
        incident = change.data
        if change.event_type == ev.INCIDENT_OPENED:
            await connection.execute(
                f"INSERT INTO {SCHEMA}.incidents (id, topic, opened_at, last_seen_at)"
                " VALUES ($1, $2, $3, $4)",
                incident.incident_id,
                incident.topic,
                incident.opened_at,
                incident.last_seen_at,
            )
        await connection.execute(
            f"INSERT INTO {SCHEMA}.incident_cases (incident_id, case_id)"
            " SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
            incident.incident_id,
            incident.added_case_ids,
        )
    await connection.execute(
        f"UPDATE {SCHEMA}.incidents SET last_seen_at = $2 WHERE status = 'open'"
        " AND topic = ANY($1::text[])",
        sorted({topic for topic, _ in outcome.topic_hits}),
        now,
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


def case_columns(alias: str = "") -> str:
    """The columns `read_case` needs, for a SELECT (optionally of a table alias)."""
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{column}" for column in _CASE_COLUMNS)


_CASE_SELECT = case_columns("c")


def read_case(row: asyncpg.Record) -> CaseState:
    case = CaseState(
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
        queued_at=row["queued_at"],
        version=row["version"],
        sentiment=_read_sentiment(row["sentiment_label"], row["sentiment_score"]),
        worst_sentiment=_read_sentiment(row["worst_sentiment_label"], row["worst_sentiment_score"]),
    )
    case.placed = case.placement()  # as stored: the "before" of its next event
    return case


def _read_sentiment(label: str | None, score: float | None) -> Sentiment | None:
    if label not in LABELS or score is None:
        return None
    # A `real` column keeps about 7 digits: the stored score is the 3-decimal one.
    return Sentiment(LABELS[LABELS.index(label)], round(score, 3))


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
        case.queued_at,
        case.version,
        case.sentiment.label if case.sentiment else None,
        case.sentiment.score if case.sentiment else None,
        case.worst_sentiment.label if case.worst_sentiment else None,
        case.worst_sentiment.score if case.worst_sentiment else None,
    )


async def require_migrated(database: Database) -> None:
    """Refuse to start on a schema older than the code: `casewire-router migrate` first."""
    async with database.pool.acquire() as connection:
        pending = await pending_migrations(connection, SCHEMA, MIGRATIONS_PACKAGE)
    if pending:
        raise RuntimeError(
            f"{pending} database migration(s) pending: run `casewire-router migrate`"
        )
