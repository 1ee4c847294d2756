"""What the API answers about saved replies and customers (also inside a case view), built
from the domain's objects."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from casewire_common.events import ActorRef, CaseStatus, Priority
from casewire_common.messages import Channel, Platform
from pydantic import BaseModel, Field

from casewire_router.domain.customers import (
    CustomerCase,
    CustomerContext,
    CustomerSummary,
    Outcome,
    Profile,
)
from casewire_router.domain.saved_replies import CatalogueEntry, Suggestion, SuggestionReason


class SavedReplyView(BaseModel):
    id: str
    title: str
    text: dict[str, str] = Field(description="By language (ISO 639-1), with placeholders.")
    teams: list[str] = Field(description="Offered to these teams; empty: every team.")
    tags: list[str]
    source: Literal["file", "api"] = Field(
        description="The saved-replies file, or written through the API (in force over the"
        " file's reply of the same id while it exists)."
    )
    overrides_file: bool = Field(description="An API version shadowing the file's reply.")
    updated_by: ActorRef | None = Field(description="Who wrote the API version.")
    updated_at: datetime | None


class SavedReplyChangeView(BaseModel):
    saved_reply: SavedReplyView
    created: bool


class SavedReplyRemovalView(BaseModel):
    saved_reply: SavedReplyView | None = Field(
        description="The version in force now: the file's, or null when the reply is gone."
    )


class SuggestedReplyView(BaseModel):
    saved_reply_id: str
    title: str
    language: str
    in_case_language: bool = Field(
        description="false: the reply has no text in the case's language and the team's"
        " default language stands in."
    )
    text: str = Field(description="Rendered for this customer and agent.")
    missing: list[str] = Field(
        description="Placeholders with no value for this case, left visible in `text`."
    )
    reason: SuggestionReason = Field(
        description="rule: the matching rule's reply_template; tags: shares the case's tags;"
        " team: one of the team's general replies."
    )


class ProfileView(BaseModel):
    handle: str | None
    name: str | None
    followers: int | None
    verified: bool | None


class CustomerCaseView(BaseModel):
    id: str
    account_id: str
    channel: Channel
    status: CaseStatus
    outcome: Outcome
    priority: Priority
    team: str
    assignee: str | None
    tags: list[str]
    language: str | None
    opened_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None


class RepeatContactsView(BaseModel):
    window_seconds: float = Field(description="CASEWIRE_ROUTER_REPEAT_CONTACT_WINDOW.")
    in_window: int = Field(description="Messages sent in the window before the last contact.")
    total: int = Field(description="Messages sent within the window after an earlier one.")


class ContactsView(BaseModel):
    messages: int = Field(description="The customer's messages on these cases.")
    first_contact: datetime | None
    last_contact: datetime | None
    repeat_contacts: RepeatContactsView


class CustomerView(BaseModel):
    platform: Platform
    id: str
    profile: ProfileView | None = Field(description="As their latest message names them.")
    total_cases: int
    open_cases: int
    cases: list[CustomerCaseView] = Field(
        description="Newest first: the 50 most recent cases and every open one."
    )
    contacts: ContactsView
    languages: list[str] = Field(description="Of their messages, most used first.")


class CustomerSummaryView(BaseModel):
    platform: Platform
    id: str
    profile: ProfileView | None
    total_cases: int
    open_cases: int
    other_open_case_ids: list[str]
    last_contact: datetime | None
    repeat_contacts_in_window: int
    languages: list[str]


def saved_reply_view(entry: CatalogueEntry) -> SavedReplyView:
    reply = entry.reply
    return SavedReplyView(
        id=reply.id,
        title=reply.title,
        text=dict(reply.text),
        teams=list(reply.teams),
        tags=list(reply.tags),
        source=entry.source,
        overrides_file=entry.overrides_file,
        updated_by=entry.updated_by,
        updated_at=entry.updated_at,
    )


def suggestion_view(suggestion: Suggestion) -> SuggestedReplyView:
    return SuggestedReplyView(
        saved_reply_id=suggestion.reply_id,
        title=suggestion.title,
        language=suggestion.language,
        in_case_language=suggestion.in_case_language,
        text=suggestion.text,
        missing=list(suggestion.missing),
        reason=suggestion.reason,
    )


def profile_view(profile: Profile | None) -> ProfileView | None:
    if profile is None:
        return None
    return ProfileView(
        handle=profile.handle,
        name=profile.name,
        followers=profile.followers,
        verified=profile.verified,
    )


def customer_view(context: CustomerContext) -> CustomerView:
    contacts = context.contacts
    return CustomerView(
        platform=context.platform,
        id=context.customer_id,
        profile=profile_view(context.profile),
        total_cases=context.total_cases,
        open_cases=context.open_cases,
        cases=[_case_view(case) for case in context.cases],
        contacts=ContactsView(
            messages=contacts.messages,
            first_contact=contacts.first_contact,
            last_contact=contacts.last_contact,
            repeat_contacts=RepeatContactsView(
                window_seconds=contacts.repeat_window.total_seconds(),
                in_window=contacts.repeat_in_window,
                total=contacts.repeat_total,
            ),
        ),
        languages=contacts.languages,
    )


def customer_summary_view(summary: CustomerSummary | None) -> CustomerSummaryView | None:
    if summary is None:
        return None
    return CustomerSummaryView(
        platform=summary.platform,
        id=summary.customer_id,
        profile=profile_view(summary.profile),
        total_cases=summary.total_cases,
        open_cases=summary.open_cases,
        other_open_case_ids=summary.other_open_case_ids,
        last_contact=summary.last_contact,
        repeat_contacts_in_window=summary.repeat_contacts_in_window,
        languages=summary.languages,
    )


def _case_view(case: CustomerCase) -> CustomerCaseView:
    return CustomerCaseView(
        id=case.id,
        account_id=case.account_id,
        channel=case.channel,
        status=case.status,
        outcome=case.outcome,
        priority=case.priority,
        team=case.team,
        assignee=case.assignee,
        tags=case.tags,
        language=case.language,
        opened_at=case.opened_at,
        first_response_at=case.first_response_at,
        resolved_at=case.resolved_at,
    )
