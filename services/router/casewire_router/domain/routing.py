"""The routing decision, and a batch of messages applied to their cases.

`CaseRouter.decide` is where a message gets its team, priority and tags: the rules file
(`rules.py`, where keywords are matched) and the urgency score (`urgency.py`); `route_batch`
then threads each message into a case (`threading.py`), opens cases and gives them to an
agent (`assignment.py`), and groups bursts into incidents (`incidents.py`).

`route_batch` is pure: given a batch of messages, the open cases of their conversations and
the agents, it returns what changed and which events to publish. The adapter loads that
state and stores the outcome in one transaction.

Outcomes follow the messages' sending times (`sent_at`), not the order they are processed
in: a brand reply processed before the message it answers waits as an orphan and counts when
that message arrives, if it was sent after it; a customer message sent before its case was
resolved joins the case's history instead of reopening it.

A conversation a chatbot answers (`handover.py`) opens no case: its messages are kept as the
bot's transcript until a handover to humans, which opens the case at the handover's time with
the transcript (`_hand_over`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from casewire_common import events as ev
from casewire_common.events import RoutingDecision
from casewire_common.messages import CanonicalMessage
from casewire_common.thread_control import ThreadControl

from casewire_router.domain.assignment import AgentScope, AssignmentChoice, choose_agent
from casewire_router.domain.batch import Batch, BatchState, MessageReading, TopicState
from casewire_router.domain.case import (
    CLOSED_STATUSES,
    CaseState,
    CaseWindows,
    customer_key,
)
from casewire_router.domain.deliveries import Routable
from casewire_router.domain.handover import (
    HANDOVER_TAG,
    NO_MARKS,
    ConversationControl,
    DeliveryMarks,
    Handover,
    HandoverPolicy,
    in_bot_phase,
)
from casewire_router.domain.incidents import close_incident, open_incidents
from casewire_router.domain.keywords import fold
from casewire_router.domain.outcome import RoutingOutcome
from casewire_router.domain.rules import PRIORITY_ORDER, RuleSet, most_urgent
from casewire_router.domain.threading import (
    absorb_split_chain,
    answered_case,
    attach_orphan_replies,
    closed_after_sending,
    closed_merge_target,
    counts_as_response,
    merge_target,
    reopen_case,
    respond,
)
from casewire_router.domain.urgency import (
    Assessment,
    UrgencyContext,
    UrgencyModel,
    assess,
    default_model,
    priority_for,
    read_text,
)

TROLL_TAG = "likely-troll"
MAX_TEXT_LENGTH = 65536  # the canonical message's `text` limit


@dataclass(frozen=True)
class CaseRouter:
    """The routing in force: rules, urgency model and case windows. Decides where each
    message goes (`decide`) and applies a batch to its cases (`route_batch`)."""

    rules: RuleSet
    urgency: UrgencyModel
    windows: CaseWindows = field(default_factory=CaseWindows)
    handover: HandoverPolicy = field(default_factory=HandoverPolicy)

    def read(
        self, message: CanonicalMessage, readings: Mapping[str, MessageReading] | None = None
    ) -> MessageReading:
        """The message's text folded and read by the urgency vocabularies: taken from
        `readings` (by message id) if it holds this text's reading, else read now."""
        known = readings.get(message.id) if readings is not None else None
        if known is not None and known.text == message.text:
            return known
        folded = fold(message.text)
        return MessageReading(
            message.text, folded, read_text(self.urgency, folded, message.language)
        )

    def read_customer_messages(
        self, messages: Sequence[CanonicalMessage]
    ) -> dict[str, MessageReading]:
        """The readings of the batch's customer messages, by id: read once, then used to lock
        their crisis topics and to route them (`route_batch(readings=...)`)."""
        return {
            message.id: self.read(message)
            for message in messages
            if message.event == "message" and message.direction == "inbound"
        }

    def crisis_topics(
        self, message: CanonicalMessage, readings: Mapping[str, MessageReading] | None = None
    ) -> frozenset[str]:
        """The crisis topics an inbound message is about (what bursts and incidents group by)."""
        return self.read(message, readings).vocabulary.crisis_topics

    def agents_needed(
        self,
        customer_messages: Sequence[CanonicalMessage],
        loaded: Iterable[CaseState],
        open_conversations: Collection[str],
        readings: Mapping[str, MessageReading] | None = None,
    ) -> AgentScope:
        """The agents routing these messages may assign or release: of the team each new case
        would go to (and an agent a rule asks for), of the teams of the cases already loaded
        (a reopen, a merge) and their owners. Only these are locked, not the whole roster."""
        teams: set[str] = set()
        agent_ids: set[str] = set()
        for case in loaded:
            teams.add(case.team)
            if case.assignee is not None:
                agent_ids.add(case.assignee)
        for message in customer_messages:
            if message.conversation_id in open_conversations:
                continue
            outcome = self.rules.evaluate(message, self.read(message, readings).folded)
            teams.add(outcome.team)
            if outcome.assign_to is not None:
                agent_ids.add(outcome.assign_to)
        return AgentScope.of(teams, agent_ids)

    def handover_agents_needed(
        self,
        items: Sequence[Routable],
        state: BatchState,
        readings: Mapping[str, MessageReading] | None = None,
    ) -> AgentScope:
        """The agents the cases that handovers in these items may open can reach (empty: none
        may open one). Such a case is routed on its whole transcript, which depends on the
        order the messages are read in, so its team is not foretold from one text: every
        team the rules may give its conversation's customer messages, whatever they say
        (`RuleSet.reach`); the messages a handover routes again as ordinary are among them."""
        handing = self._conversations_handing_over(items, state, readings)
        told = [
            item
            for item in items
            if isinstance(item, CanonicalMessage)
            and item.event == "message"
            and item.conversation_id in handing
        ]
        for conversation in handing:
            if conversation in state.controls:
                told += state.controls[conversation].waiting
        teams: set[str] = set()
        agent_ids: set[str] = set()
        for message in told:
            if message.direction == "outbound":
                continue
            reached_teams, reached_agents = self.rules.reach(message)
            teams |= reached_teams
            agent_ids |= reached_agents
        return AgentScope.of(teams, agent_ids)

    def _conversations_handing_over(
        self,
        items: Sequence[Routable],
        state: BatchState,
        readings: Mapping[str, MessageReading] | None,
    ) -> set[str]:
        """The conversations, with no open case, in which routing these items may hand over
        to humans: a pass to humans, a bot account's handoff message, a transcript message
        read after the pass it precedes."""
        handing: set[str] = set()
        for item in items:
            if item.conversation_id in state.open_cases:
                continue
            if isinstance(item, ThreadControl):
                if self.handover.follows_protocol(item.platform) and (
                    self.handover.owner_after(item) == "human"
                ):
                    handing.add(item.conversation_id)
                continue
            if item.event != "message" or not self.handover.applies(item.platform, item.account_id):
                continue
            if self.handover.bot_first(item.platform, item.account_id):
                folded = (
                    self.read(item, readings).folded
                    if item.direction == "inbound"
                    else fold(item.text)
                )
                if self.rules.handoff_reason(item, folded) is not None:
                    handing.add(item.conversation_id)
                    continue
            control = state.controls.get(item.conversation_id)
            handover = control.handover_after(item.sent_at) if control else None
            if handover is not None and handover.case_id is None:
                handing.add(item.conversation_id)
        return handing

    def decide(
        self,
        message: CanonicalMessage,
        context: UrgencyContext | None = None,
        reading: MessageReading | None = None,
    ) -> tuple[RoutingDecision, Assessment, str | None]:
        """The routing decision for a message, its urgency assessment, and the agent a rule
        asks for (`assign_to`); `reading` is the message's `read`, if the caller has it."""
        if reading is None or reading.text != message.text:
            reading = self.read(message)  # once for the rules and every urgency signal
        outcome = self.rules.evaluate(message, reading.folded)
        assessment = assess(self.urgency, message, reading.folded, context, reading.vocabulary)
        priority = most_urgent(outcome.priority, priority_for(assessment.urgency.score))
        assert priority is not None
        tags = list(outcome.tags)
        if assessment.troll_likely and TROLL_TAG not in tags:
            tags.append(TROLL_TAG)
        return (
            RoutingDecision(
                rules_version=self.rules.version,
                matched_rules=outcome.matched_rules,
                urgency=assessment.urgency,
                team=outcome.team,
                priority=priority,
                tags=tags,
                skip=outcome.skip,
                reply_template=outcome.reply_template,
            ),
            assessment,
            outcome.assign_to,
        )

    def route_batch(
        self,
        messages: Sequence[Routable],
        state: BatchState,
        *,
        new_id: Callable[[], str],
        now: datetime,
        readings: Mapping[str, MessageReading] | None = None,
        marks: Mapping[str, DeliveryMarks] | None = None,
    ) -> RoutingOutcome:
        """Apply messages (and thread-control records) in order to the loaded state (updated
        in place), then incidents. `readings`: the customer messages' texts already read
        (`read_customer_messages`); `marks`: how ingest delivered each message, by id."""
        result = RoutingOutcome()
        result.incidents.extend(close_incident(quiet) for quiet in state.quiet_incidents)
        state.quiet_incidents = []
        batch = Batch(state, result, new_id, now, readings or {}, marks or {})
        result.marks = dict(batch.marks)  # stored with the messages (their phase may be
        # decided again when a handover read late says when control changed)
        for item in messages:
            if isinstance(item, ThreadControl):
                self._on_thread_control(item, batch)
            elif item.event != "message":
                self._on_message_update(item, batch)
            elif self._in_bot_phase(item, batch):
                self._on_bot_phase_message(item, batch)
            else:
                self._on_message(item, batch)
        open_incidents(batch, self.windows.incident_threshold)
        for topic in batch.hits:  # the state stays current for the next batch
            topic_state = state.topics.setdefault(topic, TopicState())
            count = batch.topic_count(topic)
            topic_state.recent_case_ids = (
                batch.topic_cases(topic) if topic_state.incident_id is None else []
            )
            topic_state.recent_count = count
        return result

    def _on_message(self, message: CanonicalMessage, batch: Batch) -> None:
        if message.direction == "outbound":
            self._on_brand_message(message, batch)
        else:
            self._on_customer_message(message, batch)

    # --- bot handover (handover.py) ----------------------------------------------------------

    def _in_bot_phase(self, message: CanonicalMessage, batch: Batch) -> bool:
        if not self.handover.applies(message.platform, message.account_id):
            return False
        control = batch.state.controls.get(message.conversation_id)
        marks = batch.marks.get(message.id, NO_MARKS)
        return in_bot_phase(message, marks, control, self.handover)

    def _on_bot_phase_message(self, message: CanonicalMessage, batch: Batch) -> None:
        """A message sent while a chatbot answered: the bot's transcript, no case, no clock,
        never a response. Kept with the case of the first handover to humans after it (read
        late), else waiting for one. On a bot account, it may hand the conversation over."""
        result = batch.result
        control = batch.state.controls.setdefault(message.conversation_id, ConversationControl())
        handover = control.handover_after(message.sent_at)
        case_id = handover.case_id if handover is not None else None
        if case_id is None:
            control.wait(message, batch.marks.get(message.id, NO_MARKS))
        result.stored_messages.append((message, case_id))
        result.bot_phase.add(message.id)
        if handover is not None and case_id is None and message.direction == "inbound":
            # The handover was read first and had no customer message to open a case on: it
            # has one now (its case opens at the handover's time all the same).
            self._settle(handover, batch)
            return
        if not self.handover.bot_first(message.platform, message.account_id):
            return
        folded = (
            self.read(message, batch.readings).folded
            if message.direction == "inbound"
            else fold(message.text)
        )
        reason = self.rules.handoff_reason(message, folded)
        if reason is not None:
            handover = Handover(
                message.conversation_id, message.sent_at, "human", reason, message.id
            )
            self._hand_over(handover, batch)

    def _on_thread_control(self, control: ThreadControl, batch: Batch) -> None:
        """A handover of Meta's protocol: to humans opens the case; to a bot is recorded (an
        open case stays open: its agent resolves it or sets it pending); a request changes
        nothing."""
        result = batch.result
        if not self.handover.follows_protocol(control.platform):
            result.thread_controls.append((control.action, "not_followed"))
            return
        owner = self.handover.owner_after(control)
        if owner is None:
            result.thread_controls.append((control.action, "request"))
            return
        result.thread_controls.append((control.action, owner))
        handover = Handover(
            control.conversation_id,
            control.sent_at,
            owner,
            "pass" if control.action == "pass" else "take",
            control.id,
            app_id=control.new_owner_app_id,
            metadata=control.metadata,
        )
        if owner == "human":
            self._hand_over(handover, batch)
            return
        batch.state.controls.setdefault(control.conversation_id, ConversationControl()).add(
            handover
        )
        result.handovers.append(handover)

    def _hand_over(self, handover: Handover, batch: Batch) -> None:
        """Humans have the conversation from `handover.at`: its case opens then (or its open
        case takes it) with the transcript sent until then; messages read earlier but sent
        after it are routed again as what they now are."""
        control = batch.state.controls.setdefault(handover.conversation_id, ConversationControl())
        control.add(handover)
        batch.result.handovers.append(handover)
        self._settle(handover, batch)

    def _settle(self, handover: Handover, batch: Batch) -> None:
        """What a handover to humans does to its conversation's waiting transcript (see
        `_hand_over`), once recorded."""
        state, result = batch.state, batch.result
        control = state.controls[handover.conversation_id]
        transcript = sorted(
            (m for m in control.waiting if m.sent_at <= handover.at), key=lambda m: m.sent_at
        )
        later = [m for m in control.waiting if m.sent_at > handover.at]
        case = state.open_cases.get(handover.conversation_id)
        if case is None:
            customer = [m for m in transcript if m.direction == "inbound"]
            if customer:  # else the next customer message opens it, as in any conversation
                case = self._open_handover_case(handover, customer, batch)
        if case is not None:
            handover.case_id = case.id
            result.handovers.append(handover)
            control.take_waiting(transcript)
            result.transcripts.extend((message.id, case.id) for message in transcript)
        stored_now = {message.id for message, _ in result.stored_messages}
        for message in sorted(later, key=lambda m: m.sent_at):
            if in_bot_phase(message, control.marks[message.id], control, self.handover):
                continue
            control.take_waiting([message])
            result.bot_phase.discard(message.id)
            if message.id not in stored_now:
                result.rerouted.add(message.id)
            self._on_message(message, batch)

    def _open_handover_case(
        self, handover: Handover, customer: Sequence[CanonicalMessage], batch: Batch
    ) -> CaseState:
        """The case a handover opens, at the handover's time: routed on everything the customer
        told the bot (their transcript messages' texts, in order), tagged `bot_handover`, never
        skipped (a handover asks for humans). The brand replies sent after it, read before it,
        are its responses."""
        latest = customer[-1]
        text = "\n".join(message.text for message in customer if message.text)
        told = latest.model_copy(update={"text": text[:MAX_TEXT_LENGTH]})
        contacts = batch.state.contact_times.get(customer_key(latest), [])
        context = UrgencyContext(recent_contacts=earlier_contacts(latest, contacts, self.windows))
        decision, _, requested = self.decide(told, context)
        tags = (
            [*decision.tags, HANDOVER_TAG] if HANDOVER_TAG not in decision.tags else decision.tags
        )
        decision = decision.model_copy(update={"tags": tags, "skip": False})
        case = self._open_case(told, decision, requested, batch, opened_at=handover.at)
        handover.case_id = case.id
        at_handover = latest.model_copy(update={"sent_at": handover.at})
        return attach_orphan_replies(at_handover, case, batch)

    def _on_customer_message(self, message: CanonicalMessage, batch: Batch) -> None:
        state, result = batch.state, batch.result
        key = customer_key(message)
        reading = self.read(message, batch.readings)
        topics = reading.vocabulary.crisis_topics
        contact_times = state.contact_times.setdefault(key, [])
        context = UrgencyContext(
            recent_contacts=earlier_contacts(message, contact_times, self.windows),
            similar_recent=max((batch.topic_count(topic) for topic in topics), default=0),
        )
        contact_times.append(message.sent_at)
        decision, _, requested = self.decide(message, context, reading)
        result.decisions[message.id] = decision
        case = state.open_cases.get(message.conversation_id)
        if case is None:
            case = answered_case(message, state)
            if case is not None:
                state.open_cases[message.conversation_id] = case
                result.links.append((message.conversation_id, case.id))
        if case is None:
            closed = closed_after_sending(message, state)
            if closed is not None:
                # Sent while the case was open, processed after it closed: part of its history.
                self._keep_with_closed_case(closed, message, batch)
                return
            case = merge_target(message, state, self.windows.merge)
            if case is not None:
                state.open_cases[message.conversation_id] = case
                result.links.append((message.conversation_id, case.id))
                result.emit(
                    ev.CASE_MERGED,
                    case,
                    message.id,
                    merged_conversation_id=message.conversation_id,
                )
        if case is None:
            closed = closed_merge_target(message, state, self.windows.merge)
            if closed is not None:
                result.links.append((message.conversation_id, closed.id))
                result.emit(
                    ev.CASE_MERGED,
                    closed,
                    message.id,
                    merged_conversation_id=message.conversation_id,
                )
                self._keep_with_closed_case(closed, message, batch)
                return
        if case is None:
            resolved = state.resolved.get(message.conversation_id)
            if (
                resolved is not None
                and resolved.resolved_at is not None
                and message.sent_at - resolved.resolved_at <= self.windows.reopen
            ):
                if decision.skip:
                    # "Thank you" for the answer: kept with the case, which stays resolved
                    # (reopening it would put it back in an agent's queue for nothing).
                    self._keep_with_closed_case(resolved, message, batch)
                    return
                case = resolved
                del state.resolved[message.conversation_id]
                self._reopen(case, message, batch)
        if case is None:
            case = self._open_case(message, decision, requested, batch)
        else:
            self._follow_up(case, message, decision, batch)
        state.cases_by_message[(message.platform, message.platform_message_id)] = case
        if message.in_reply_to is not None and case.status not in CLOSED_STATUSES:
            answering = state.cases_answering.setdefault(
                (message.platform, message.in_reply_to), []
            )
            if all(held is not case for held in answering):
                answering.append(case)
        case = absorb_split_chain(message, case, batch)
        case = attach_orphan_replies(message, case, batch)
        if case.status not in CLOSED_STATUSES:
            for topic in topics:
                batch.hit(topic, case)

    def _keep_with_closed_case(
        self, case: CaseState, message: CanonicalMessage, batch: Batch
    ) -> None:
        """A customer message that joins a closed case's history: the case stays closed."""
        case.feel(self.read(message, batch.readings).vocabulary.sentiment)
        batch.result.stored_messages.append((message, case.id))
        batch.result.emit(ev.CASE_MESSAGE_ADDED, case, message.id)
        batch.state.cases_by_message[(message.platform, message.platform_message_id)] = case
        attach_orphan_replies(message, case, batch)

    def _follow_up(
        self,
        case: CaseState,
        message: CanonicalMessage,
        decision: RoutingDecision,
        batch: Batch,
    ) -> None:
        result = batch.result
        result.stored_messages.append((message, case.id))
        case.tags.extend(tag for tag in decision.tags if tag not in case.tags)
        if message.sent_at < case.opened_at:
            # Sent before the message that opened the case, processed after it: the case has
            # been open since the customer first wrote (its clocks run from then).
            case.opened_at = message.sent_at
        if case.language is None and message.language is not None:
            case.language = message.language
        case.feel(self.read(message, batch.readings).vocabulary.sentiment)
        result.emit(ev.CASE_MESSAGE_ADDED, case, message.id)  # the case is written back
        if case.status == "pending":
            # The customer answered: the case is theirs to work on again.
            result.change_status(
                case, "assigned" if case.assignee is not None else "queued", message_id=message.id
            )
        if PRIORITY_ORDER[decision.priority] < PRIORITY_ORDER[case.priority]:
            previous = case.priority
            case.priority = decision.priority
            case.urgency_score = max(case.urgency_score, decision.urgency.score)
            result.cases[case.id] = case
            result.emit(
                ev.CASE_PRIORITY_CHANGED,
                case,
                message.id,
                decision=decision,
                previous_priority=previous,
            )

    def _reopen(self, case: CaseState, message: CanonicalMessage, batch: Batch) -> None:
        """A customer wrote again soon after resolution: the same case, opened again."""
        state = batch.state
        state.open_cases[case.conversation_id] = case
        state.open_cases[message.conversation_id] = case
        state.open_by_customer.setdefault(customer_key(message), []).append(case)
        reopen_case(case, state.agents, batch.result, batch.now, message_id=message.id)

    def _open_case(
        self,
        message: CanonicalMessage,
        decision: RoutingDecision,
        requested: str | None,
        batch: Batch,
        *,
        opened_at: datetime | None = None,
    ) -> CaseState:
        """Open a case on `message` (stored with it), or, given `opened_at` (a handover),
        on what the customer told the bot (not a message of its own: the transcript joins)."""
        state, result = batch.state, batch.result
        case = CaseState(
            id=batch.new_id(),
            conversation_id=message.conversation_id,
            customer_id=message.customer_id,
            account_id=message.account_id,
            platform=message.platform,
            channel=message.channel,
            visibility=message.visibility,
            status="queued",
            priority=decision.priority,
            urgency_score=decision.urgency.score,
            team=decision.team,
            assignee=None,
            tags=list(decision.tags),
            language=message.language,
            opened_at=opened_at or message.sent_at,
            decision=decision,
        )
        case.feel(self.read(message, batch.readings).vocabulary.sentiment)
        result.cases[case.id] = case
        result.opened.add(case.id)
        result.links.append((message.conversation_id, case.id))
        if opened_at is None:
            result.stored_messages.append((message, case.id))
        self._give_handover_its_case(case, batch)
        if decision.skip:
            # Needs no reply: recorded and counted, closed at once.
            case.status = "no_action"
            case.resolved_at = message.sent_at
            result.emit(ev.CASE_CREATED, case, message.id, decision=decision)
            return case
        state.open_cases[case.conversation_id] = case
        state.open_by_customer.setdefault(customer_key(message), []).append(case)
        choice = choose_agent(
            case.team, case.language, list(state.agents.values()), requested=requested
        )
        decision = replace_decision(decision, choice)
        case.decision = decision
        result.emit(ev.CASE_CREATED, case, message.id, at=opened_at, decision=decision)
        if choice.agent_id is not None:
            result.assign(
                case,
                state.agents[choice.agent_id],
                batch.now,
                message_id=message.id,
                decision=decision,
                at=opened_at,
            )
        return case

    def _give_handover_its_case(self, case: CaseState, batch: Batch) -> None:
        """A case opened in a conversation handed to humans with nothing to open a case on
        yet (no customer message in the transcript): it is that handover's case, so the
        transcript read late joins it, and on a bot account the bot's turn comes back once
        it is closed."""
        control = batch.state.controls.get(case.conversation_id)
        latest = control.latest_until(case.opened_at) if control else None
        if latest is not None and latest.owner == "human" and latest.case_id is None:
            latest.case_id = case.id
            batch.result.handovers.append(latest)

    def _on_brand_message(self, message: CanonicalMessage, batch: Batch) -> None:
        state = batch.state
        case = state.open_cases.get(message.conversation_id)
        if case is None and message.in_reply_to is not None:
            case = state.cases_by_message.get((message.platform, message.in_reply_to))
        if case is None:
            case = state.resolved.get(message.conversation_id)
        if case is None or not counts_as_response(message, case, answered_at=case.opened_at):
            # A brand message never opens a case. Kept without one, as an orphan: the message
            # it answers may not have been processed yet (`_attach_orphan_replies`).
            batch.result.stored_messages.append((message, None))
            state.orphan_replies.add(message)
            return
        batch.result.stored_messages.append((message, case.id))
        respond(case, message, batch)
        absorb_split_chain(message, case, batch)

    def _on_message_update(self, message: CanonicalMessage, batch: Batch) -> None:
        """An edit or delete of a message (the same id as the original): stored, published on
        the original's case (`casewire.case.message_updated`), and an edited customer message
        of an open case re-scored on its own: the case's priority rises if the new text is
        more urgent, and is never lowered by an edit."""
        result = batch.result
        result.edits.append(message)
        case = batch.state.cases_by_message.get((message.platform, message.platform_message_id))
        if case is None:
            return  # a message kept without a case (a brand message), or never seen
        if message.event == "delete":
            result.emit(ev.CASE_MESSAGE_UPDATED, case, message.id, at=message.sent_at, deleted=True)
            return
        reading = self.read(message) if message.direction == "inbound" else None
        if reading is not None:
            case.feel(reading.vocabulary.sentiment)  # the edited text is what it now says
        result.emit(
            ev.CASE_MESSAGE_UPDATED, case, message.id, at=message.sent_at, text=message.text
        )
        if reading is None or case.status in CLOSED_STATUSES:
            return
        decision, _, _ = self.decide(message, reading=reading)
        if PRIORITY_ORDER[decision.priority] < PRIORITY_ORDER[case.priority]:
            previous = case.priority
            case.priority = decision.priority
            case.urgency_score = max(case.urgency_score, decision.urgency.score)
            result.emit(
                ev.CASE_PRIORITY_CHANGED,
                case,
                message.id,
                at=message.sent_at,
                decision=decision,
                previous_priority=previous,
            )


def case_router_for(
    rules: RuleSet, windows: CaseWindows | None = None, handover: HandoverPolicy | None = None
) -> CaseRouter:
    """The router for a rules file: its rules, and the shipped urgency vocabularies extended
    by the file's `urgency` and `vocabulary` sections; `handover`: who counts as human and
    which accounts a chatbot answers first (none: every conversation is for humans)."""
    crisis = {
        topic: [
            *rules.extra_crisis_words.get(topic, []),
            *rules.vocabulary_crisis_words.get(topic, []),
        ]
        for topic in {**rules.extra_crisis_words, **rules.vocabulary_crisis_words}
    }
    urgency = default_model(crisis, rules.extra_negative_words, rules.vocabulary_words)
    return CaseRouter(
        rules=rules,
        urgency=urgency,
        windows=windows or CaseWindows(),
        handover=handover or HandoverPolicy(),
    )


def replace_decision(
    decision: RoutingDecision, choice: AssignmentChoice, reason: str | None = None
) -> RoutingDecision:
    """The decision with the assignment's outcome: candidates, assignee and why (`reason`, or
    the choice's own)."""
    return decision.model_copy(
        update={
            "candidates": choice.candidates,
            "candidates_considered": choice.considered,
            "assignee": choice.agent_id,
            "assignment_reason": choice.reason if reason is None else reason,
        }
    )


def earlier_contacts(
    message: CanonicalMessage, times: Sequence[datetime], windows: CaseWindows
) -> int:
    """How many of the customer's messages were sent within the repeat-contact window
    before this one: by sending time, so a message processed late does not count the
    messages its customer sent after it."""
    since = message.sent_at - windows.repeat_contact
    return sum(1 for at in times if since <= at < message.sent_at)
