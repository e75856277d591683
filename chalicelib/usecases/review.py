"""Use case: the review of a break-glass grant, after the fact.

* On the card: an approver of the role (as the catalog says now; never the requester)
  acknowledges it (button ``ack_break_glass``) or flags it with a reason (the text input
  ``flag_break_glass``; a flag is also told to #security). Once: a conditional write, and on
  a lost write the record is read and decided again, as approvals are.
* By the sweep (:func:`review_step`, for records the ``due`` index brings up at
  :func:`~chalicelib.domain.timing.review_next_at`): until it is reviewed, reminders DM
  the approvers 1h, 2h, 4h, 8h... after the use; past the role's ``review_within``, one
  ``break_glass_review_overdue`` notice goes to #security, and reminders stop. Each step is
  recorded with the move that owes its messages, and each message is delivered at most
  once (:func:`~chalicelib.usecases.delivery.deliver_once`), however often the sweep runs.
"""

from __future__ import annotations

from datetime import datetime

from ..domain import decide as rules
from ..domain.duration import format_duration
from ..domain.errors import Conflict
from ..domain.model import Request, hhmm, iso_z
from ..domain.lifecycle import GrantStatus
from ..domain.timing import review_steps_due
from ..slack.escape import escape_mrkdwn
from ..slack.parse import MAX_REASON, Click
from ..slack.views import FLAG_BREAK_GLASS
from . import jobs
from .delivery import deliver_once, owed
from .deps import RETRIES, Deps
from .outcomes import Answer, ClickDone, Refused, TooBusy, UnknownRequest


def review_click(deps: Deps, click: Click) -> Answer:
    """Acknowledge or flag (admitted by ``breakglass.admit_click``)."""
    from .breakglass import flagged_request

    clicker = deps.catalog.person_by_slack(click.user_id).key
    flag = click.action_id == FLAG_BREAK_GLASS
    rid = flagged_request(click) if flag else click.request_id
    why = " ".join(click.request_id.split())[:MAX_REASON] if flag else None
    for _ in range(RETRIES):
        req = deps.store.get(rid)
        if req is None:
            return Answer(UnknownRequest(rid))
        decision = rules.decide_review(req, deps.role_of(req), clicker, why)
        if not decision.allowed:
            return Answer(Refused(decision.reason))
        now = deps.now()
        if why is None:
            after, event = req.review_acknowledged(now, clicker)
            follow: list[jobs.Job] = [jobs.Card(rid)]
        else:
            after, event = req.review_flagged(now, clicker, why)
            follow = [jobs.Card(rid), jobs.Security("break_glass_flagged", {
                "request_id": rid, "requester": req.requester, "account": req.account, "role": req.role,
                "flagged_by": clicker, "note": why})]
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            continue  # somebody else reviewed (or the grant moved on): read and decide again
        return Answer(ClickDone(), follow)
    return Answer(TooBusy(rid))


def review_step(deps: Deps, request_id: str, now: datetime) -> list[jobs.Job]:
    """The sweep's share: the reminder or the escalation due now, recorded once."""
    for _ in range(RETRIES):
        req = deps.store.get(request_id)
        if req is None or not req.review_open or req.review_escalated_at is not None:
            return []
        if req.grant_status in (GrantStatus.GRANTING, GrantStatus.REVOKING):
            return []  # a job is between IAM and the record: the next sweep steps the review
        if req.review_due_at is not None and now >= req.review_due_at:
            after, event = req.review_escalated(now)
            follow: list[jobs.Job] = [jobs.Security("break_glass_review_overdue", {
                "request_id": request_id, "requester": req.requester, "account": req.account, "role": req.role,
                "review_due_at": iso_z(req.review_due_at), "reminders": req.review_reminders}),
                jobs.Card(request_id)]
        else:
            step = review_steps_due(req, now)
            if step <= req.review_reminders:
                return []
            after, event = req.review_reminded(now, step)
            follow = [jobs.ReviewReminder(request_id, step)]
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            continue
        return follow
    return []


def send_reminder(deps: Deps, job: jobs.ReviewReminder) -> None:
    """DM each approver of the role (as the catalog says now), never the requester, once."""
    key = f"dm:review:{job.step}"
    req = deps.store.get(job.request_id)
    if req is None:
        deps.store.settle(job.request_id, key, 2**31)
        return
    if not req.review_open:  # reviewed meanwhile: nobody needs reminding
        deps.store.settle(req.request_id, key, req.version)
        return
    role = deps.role_of(req)
    text = reminder_text(req, job.step, deps.catalog.approvals_channel)
    for person in (role.approvers if role else ()):
        who = deps.catalog.people.get(person)
        if person == req.requester or who is None:
            continue
        deliver_once(deps, req.request_id, f"{key}:{person}", channel=who.slack_user, text=text, blocks=None,
                     event_type="break_glass_review_reminder",
                     payload={"request_id": req.request_id, "step": job.step, "approver": person},
                     match={"request_id": req.request_id, "step": job.step})
    deps.store.settle(req.request_id, key, req.version)


def reminder_text(req: Request, step: int, approvals_channel: str) -> str:
    due = f"{iso_z(req.review_due_at)} ({hhmm(req.review_due_at)})" if req.review_due_at else "soon"
    return (f":rotating_light: Please review break-glass `{req.request_id}`: @{escape_mrkdwn(req.requester)} gave "
            f"themself `{req.label}` without approvals at {hhmm(req.decided_at)} for "
            f"{format_duration(req.duration_seconds)} ({escape_mrkdwn(req.reason)}). Acknowledge or flag it on "
            f"its card in <#{approvals_channel}>. Reminder {step}; if nobody reviews it by {due}, #security "
            "is told.")
