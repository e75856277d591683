"""What a slash command or a click came to, as values: the use cases return these, and
``chalicelib/slack/replies.py`` turns them into words. No use case phrases Slack text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence, Union

from ..domain.model import Request
from .jobs import Job


@dataclass(frozen=True)
class Refused:
    """Refused with a reason fit to show the person (from a domain decision)."""

    reason: str
    #: the field of the request form it is about ("role", "duration", "reason"; "" elsewhere)
    about: str = field(default="", compare=False)


@dataclass(frozen=True)
class Unreadable:
    """The command's words do not parse (``reason`` says how to write them)."""

    reason: str


@dataclass(frozen=True)
class NotInCatalog:
    slack_user: str


@dataclass(frozen=True)
class WrongWorkspace:
    """Signed, but from a Slack workspace or app this installation does not serve."""


@dataclass(frozen=True)
class UnknownRequest:
    request_id: str


@dataclass(frozen=True)
class ActivityReport:
    """What was done with a grant, so far or (ended) in all: the digest's text."""

    request_id: str
    label: str
    text: str


@dataclass(frozen=True)
class ReviewQueued:
    """``/aws-access review``: allowed; the review of the last ``days`` is on its way by DM."""

    days: int


@dataclass(frozen=True)
class TooBusy:
    """The record kept changing under us; try again."""

    request_id: str


@dataclass(frozen=True)
class Requested:
    req: Request
    approvers: tuple[str, ...]  # who could approve it (never the requester without self-approval)
    approvals_channel: str


@dataclass(frozen=True)
class ExtensionAsked:
    req: Request  # with its new extension (pending, or approved at once)
    approvers: tuple[str, ...]  # who could approve it
    approvals_channel: str


@dataclass(frozen=True)
class Cancelled:
    req: Request


@dataclass(frozen=True)
class Revoking:
    req: Request


@dataclass(frozen=True)
class Help:
    person: str
    roles: Sequence[Any]  # catalog roles this person may request and could get approved


@dataclass(frozen=True)
class Listing:
    own: Sequence[Request]
    waiting: Sequence[Request]  # others' pending requests this person could approve now
    now: datetime
    owed: Sequence[Any] = ()  # messages about their requests not delivered yet (ports.Owed)
    ended: Sequence[Request] = ()  # their grants that ended within a session's length (issue 15)


@dataclass(frozen=True)
class ClickDone:
    """A click that counted (approval, final approval or denial)."""


@dataclass(frozen=True)
class DenyFormNotOpened:
    """*Deny with reason…* clicked, but Slack did not open the form (``error``: its word)."""

    request_id: str
    error: str


@dataclass(frozen=True)
class UnknownButton:
    pass


@dataclass(frozen=True)
class BadButtonValue:
    pass


@dataclass(frozen=True)
class BreakGlassPreview:
    """``/aws-access breakglass ...`` passed every check: what a Confirm would do (nothing
    has happened yet). ``confirm`` is the Confirm button's value: what the person typed."""

    label: str
    production: bool
    seconds: int
    until: datetime  # if confirmed now
    reason: str
    approvers: tuple[str, ...]  # who must review it (never the requester)
    review_within_seconds: int
    approvals_channel: str
    security_channel: str
    confirm: str


@dataclass(frozen=True)
class BrokeGlass:
    """Confirmed: the break-glass grant is recorded and being made."""

    req: Request
    approvals_channel: str
    security_channel: str


Outcome = Union[Refused, Unreadable, NotInCatalog, WrongWorkspace, UnknownRequest, TooBusy, Requested, ExtensionAsked,
                Cancelled, Revoking, Help, Listing, ClickDone, UnknownButton, BadButtonValue, BreakGlassPreview,
                BrokeGlass, ActivityReport, ReviewQueued]


@dataclass(frozen=True)
class Answer:
    """An outcome and the jobs that follow it."""

    outcome: Outcome
    jobs: list[Job] = field(default_factory=list)
