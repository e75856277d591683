"""Work deferred past the Slack ack: typed jobs, and their wire form for the worker Lambda.

A job names a request (or carries what it needs) and re-reads the table when it runs, so
a retried or late job converges instead of repeating itself. In Lambda the jobs travel to
the async worker as JSON (``{"job": "<kind>", ...}``); elsewhere they run in-process.
:func:`chalicelib.usecases.dispatch.run` runs one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union


@dataclass(frozen=True)
class Card:
    """Post the approval card, or update it in place, from the record's current state."""

    kind: ClassVar[str] = "card"
    request_id: str
    event_type: str = ""
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Dm:
    """Tell the requester (granted, denied, ended...), once per kind of message."""

    kind: ClassVar[str] = "dm"
    request_id: str
    event_type: str
    payload: dict = field(default_factory=dict)
    #: tells apart messages of one kind a request may send more than once (the extension's number)
    tag: str = ""


@dataclass(frozen=True)
class Ephemeral:
    """A private answer to whoever clicked a button; with no ``channel`` (a click in the
    App Home, which has none) it goes to them as a DM."""

    kind: ClassVar[str] = "ephemeral"
    channel: str
    user: str
    text: str


@dataclass(frozen=True)
class Grant:
    """Make the IAM grant of an approved request."""

    kind: ClassVar[str] = "grant"
    request_id: str


@dataclass(frozen=True)
class EndGrant:
    """Take the grant out of IAM and record REVOKED (asked for) or EXPIRED (time is up)."""

    kind: ClassVar[str] = "end_grant"
    request_id: str


@dataclass(frozen=True)
class CutSessions:
    """Deny, at the target role, the role sessions an ended grant let people start
    (usecases/cut.py). Without ``end``: the grantee's (and ``people``'s) sessions issued
    before the record's ``cut_before``, and the record says when it was done. With ``end``
    (ISO 8601): only ``people``'s sessions issued before it - copies of a live grant that the
    sweep took back from other users (drift)."""

    kind: ClassVar[str] = "cut_sessions"
    request_id: str
    people: list = field(default_factory=list)
    end: str = ""


@dataclass(frozen=True)
class ExtendGrant:
    """Put the record's approved extension number ``extension`` into IAM (usecases/extend.py)."""

    kind: ClassVar[str] = "extend_grant"
    request_id: str
    extension: int


@dataclass(frozen=True)
class AskApprovers:
    """DM each approver of the role about the record's extension number ``extension``, with
    its Approve / Deny buttons (usecases/notify.py ``ask_approvers``), each once."""

    kind: ClassVar[str] = "ask_approvers"
    request_id: str
    extension: int


@dataclass(frozen=True)
class Security:
    """A notice for the security channel (a failed grant, drift); ``event_type`` and
    ``payload`` are its message metadata, and the text is rendered from them."""

    kind: ClassVar[str] = "security"
    event_type: str
    payload: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReviewReminder:
    """Remind the approvers of a break-glass grant's role to review it (reminder ``step``),
    each once (usecases/review.py)."""

    kind: ClassVar[str] = "review_reminder"
    request_id: str
    step: int


@dataclass(frozen=True)
class RemindApprovers:
    """Remind the approvers who could still decide a waiting request (reminder ``reminder``),
    each once, by DM with the card's buttons (usecases/remind.py)."""

    kind: ClassVar[str] = "remind_approvers"
    request_id: str
    reminder: int


@dataclass(frozen=True)
class Escalated:
    """Say in the approvals channel that a waiting request was escalated: its approvers and
    fallback approvers mentioned (usecases/remind.py), once."""

    kind: ClassVar[str] = "escalated"
    request_id: str


@dataclass(frozen=True)
class PublishHome:
    """Publish the App Home of the Slack user ``user_id`` from the table as it is now
    (usecases/home.py): views.publish replaces the whole view, so publishing twice is harmless."""

    kind: ClassVar[str] = "publish_home"
    user_id: str


@dataclass(frozen=True)
class ActivityDigest:
    """Post the grant's activity digest in its card's thread once it has ended and late
    CloudTrail deliveries have settled (usecases/activity.py), once."""

    kind: ClassVar[str] = "activity_digest"
    request_id: str


@dataclass(frozen=True)
class AccessReview:
    """Send the access review of the ``days`` before ``end`` (ISO 8601, when it was asked) to
    the Slack user ``user_id`` as a DM with its CSV and JSON files (usecases/access_review.py),
    once."""

    kind: ClassVar[str] = "access_review"
    user_id: str
    days: int
    end: str


@dataclass(frozen=True)
class WeeklyReview:
    """Finish the weekly access review of the week that starts at ``start`` (ISO 8601) in
    the security channel (usecases/access_review.py ``weekly``): the sweep's backstop hands
    it to the worker, never runs it itself."""

    kind: ClassVar[str] = "weekly_review"
    start: str


Job = Union[Card, Dm, Ephemeral, Grant, EndGrant, CutSessions, Security, ExtendGrant, AskApprovers, ReviewReminder,
            RemindApprovers, Escalated, PublishHome, ActivityDigest, AccessReview, WeeklyReview]
KINDS: dict[str, type] = {cls.kind: cls for cls in (Card, Dm, Ephemeral, Grant, EndGrant, CutSessions, Security,
                                                    ExtendGrant, AskApprovers, ReviewReminder, RemindApprovers,
                                                    Escalated, PublishHome, ActivityDigest, AccessReview,
                                                    WeeklyReview)}


class BadJob(ValueError):
    """A worker payload that is not a job Drawbridge knows."""


def to_wire(job: Job) -> dict[str, Any]:
    return {"job": job.kind, **dataclasses.asdict(job)}


def from_wire(data: Any) -> Job:
    if not isinstance(data, dict) or data.get("job") not in KINDS:
        kind = data.get("job") if isinstance(data, dict) else data
        raise BadJob(f"unknown job {kind!r}")
    cls = KINDS[data["job"]]
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError as exc:
        raise BadJob(f"bad {data['job']} job: {exc}") from None


def as_job(job: Job | dict) -> Job:
    return from_wire(job) if isinstance(job, dict) else job


def describe(job: Job | dict) -> dict[str, Any]:
    """For logs: the kind and the request id, whatever form the job is in."""
    if isinstance(job, dict):
        return {"job": job.get("job"), "request_id": job.get("request_id")}
    return {"job": job.kind, "request_id": getattr(job, "request_id", None)}
