"""Bot handover: while a chatbot answers a conversation, its messages are the bot's transcript
(kept, no case, no clock, never a response); when humans get the conversation, its case opens
then, with the transcript (docs/handover.md).

Who answers a conversation is known two ways:

- Meta's handover protocol (Messenger, Instagram), when Casewire's own app ids are configured.
  A message ingest read on the `standby` channel was sent while another app owned the thread:
  it is the bot's transcript, unless the thread was with the Page inbox and the inbox counts
  as human (a handover to it, or the echo of an inbox reply, says so). A message on the
  `messaging` channel came while Casewire owned the thread: an ordinary message. Handovers
  (`pass`, `take`) say when control changed: to Casewire's app, or to the Page inbox when it
  counts, is to humans; to any other app is to a bot. A `request` changes nothing.
- Bot accounts (any platform without a protocol: WhatsApp, X, the generic channel): a
  conversation on a configured brand account starts with the chatbot, and goes to humans when
  the rules file's `handoff` says (a customer asks for a person, or the bot writes its marker).
  It goes back to the bot once the case that handover opened is closed.

Everything is decided by event time: a message belongs to the phase it was sent in, whatever
the order the router reads the message and the handover in.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from casewire_common.messages import CanonicalMessage
from casewire_common.thread_control import PAGE_INBOX_APP_ID, ThreadControl

from casewire_router.domain.rules import HandoffReason

Owner = Literal["bot", "human"]
# What handed the conversation over: a thread-control record's action, or the rules file's
# handoff (`HandoffReason`).
HandoverReason = Literal["pass", "take"] | HandoffReason
HANDOVER_TAG = "bot_handover"

_META_PLATFORMS = frozenset({"facebook", "instagram"})


@dataclass(frozen=True)
class DeliveryMarks:
    """What ingest said about a message beside it (record headers): read on Meta's `standby`
    channel, and the app that sent an echo."""

    standby: bool = False
    app_id: str | None = None


NO_MARKS = DeliveryMarks()


@dataclass(frozen=True)
class HandoverPolicy:
    """Who counts as human, and which conversations a chatbot answers first (the settings)."""

    casewire_app_ids: frozenset[str] = frozenset()  # empty: Meta's protocol is not followed
    page_inbox_is_human: bool = True
    bot_accounts: frozenset[tuple[str, str]] = frozenset()  # (platform, brand account)

    def follows_protocol(self, platform: str) -> bool:
        return bool(self.casewire_app_ids) and platform in _META_PLATFORMS

    def bot_first(self, platform: str, account_id: str) -> bool:
        """A conversation on this account starts with the chatbot (a bot account)."""
        return (platform, account_id) in self.bot_accounts

    def applies(self, platform: str, account_id: str) -> bool:
        """Whether a conversation on this account can be a chatbot's at all."""
        return self.follows_protocol(platform) or self.bot_first(platform, account_id)

    def human_app(self, app_id: str | None) -> bool:
        """An app whose thread is with humans: Casewire's own, or the Page inbox if it counts."""
        return app_id in self.casewire_app_ids or (
            self.page_inbox_is_human and app_id == PAGE_INBOX_APP_ID
        )

    def owner_after(self, control: ThreadControl) -> Owner | None:
        """Who answers the conversation after a thread-control event; None: it changes nothing
        (a request)."""
        if control.action == "request":
            return None
        return "human" if self.human_app(control.new_owner_app_id) else "bot"


@dataclass
class Handover:
    """One change of who answers a conversation, at `at` (event time)."""

    conversation_id: str
    at: datetime
    owner: Owner
    reason: HandoverReason
    source_id: str  # the thread-control record, or the message the handoff rule read
    app_id: str | None = None  # the app that owns the thread now (Meta)
    metadata: str | None = None  # what the app that handed over attached (Meta)
    case_id: str | None = None  # to humans: the case it opened or joined (once there is one)
    case_closed_at: datetime | None = None  # when that case was closed, if it is


@dataclass
class ConversationControl:
    """One conversation's handovers, earliest first, and its transcript still without a case."""

    handovers: list[Handover] = field(default_factory=list)
    waiting: list[CanonicalMessage] = field(default_factory=list)
    # How each waiting message was delivered (by id): its phase is decided again when a
    # handover read late says when control changed.
    marks: dict[str, DeliveryMarks] = field(default_factory=dict)

    def add(self, handover: Handover) -> None:
        """Record a handover in time order (one read late goes where it happened)."""
        index = bisect.bisect_right([h.at for h in self.handovers], handover.at)
        self.handovers.insert(index, handover)

    def latest_until(self, instant: datetime) -> Handover | None:
        """The last handover at or before `instant`: who answered then."""
        earlier = [h for h in self.handovers if h.at <= instant]
        return earlier[-1] if earlier else None

    def handover_after(self, instant: datetime) -> Handover | None:
        """The first handover to humans at or after `instant`: a transcript message sent then
        belongs to its case."""
        for handover in self.handovers:
            if handover.at >= instant and handover.owner == "human":
                return handover
        return None

    def wait(self, message: CanonicalMessage, marks: DeliveryMarks) -> None:
        self.waiting.append(message)
        self.marks[message.id] = marks

    def take_waiting(self, messages: Iterable[CanonicalMessage]) -> None:
        taken = {message.id for message in messages}
        self.waiting = [message for message in self.waiting if message.id not in taken]
        for message_id in taken:
            self.marks.pop(message_id, None)


def in_bot_phase(
    message: CanonicalMessage,
    marks: DeliveryMarks,
    control: ConversationControl | None,
    policy: HandoverPolicy,
) -> bool:
    """Whether a message was sent while a chatbot answered its conversation (see the module's
    docstring); False wherever no handover applies."""
    if policy.follows_protocol(message.platform):
        if not marks.standby:
            return False  # Casewire's own channel: Casewire owned the thread
        if marks.app_id is not None and policy.human_app(marks.app_id):
            return False  # the Page inbox answered: humans own the thread
        latest = control.latest_until(message.sent_at) if control else None
        return not (
            latest is not None
            and latest.owner == "human"
            and latest.app_id == PAGE_INBOX_APP_ID
            and policy.page_inbox_is_human
        )
    if policy.bot_first(message.platform, message.account_id):
        latest = control.latest_until(message.sent_at) if control else None
        if latest is None or latest.owner == "bot":
            return True
        return latest.case_closed_at is not None and latest.case_closed_at <= message.sent_at
    return False
