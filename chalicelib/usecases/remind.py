"""Use case: remind the approvers of a waiting request (issue 17), driven by the sweep.

A request records when its approvers are next reminded (``remind_at``: its role's
``remind_after`` after it was made, then twice as long each time). When that time comes
and the request still waits, the sweep records the reminder (the ``remind`` move: the
state stays) and owes, in the same transaction, a DM to each approver who could still
decide it (the same decision a click would get, as the catalog says now), with the card's
Approve / Deny buttons, and a DM to the requester naming who was reminded. Each is
delivered at most once however often the sweep or the job runs; a request decided
meanwhile sends nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..domain import decide as rules
from ..domain.errors import Conflict
from ..domain.lifecycle import RequestStatus
from ..domain.model import Request
from . import jobs
from .delivery import deliver_once, dm_each, key_of, owed
from .deps import Deps


def who_to_remind(deps: Deps, req: Request, now: datetime) -> list[str]:
    """The approvers (and, once it was escalated, the fallback approvers) who could decide the
    request right now and have not approved it."""
    role = deps.role_of(req)
    if role is None:
        return []
    return [a for a in rules.deciders(req, role) if rules.decide_approval(req, role, a, now).allowed]


def remind_step(deps: Deps, req: Request, now: datetime) -> list[jobs.Job]:
    """The sweep's share: the escalation or the reminder due now, recorded once (a racing
    sweep loses the write)."""
    if req.status is not RequestStatus.PENDING or now >= req.pending_until:
        return []
    if req.escalate_at is not None and now >= req.escalate_at:
        return _escalate(deps, req, now)
    if req.remind_at is None or now < req.remind_at:
        return []
    role = deps.role_of(req)
    every = role.remind_after_seconds if role is not None else None
    reminded = who_to_remind(deps, req, now)
    n = req.reminders + 1
    next_at = now + timedelta(seconds=every * 2 ** n) if every else None
    after, event = req.remind(now, next_at, reminded)
    follow: list[jobs.Job] = []
    if reminded:
        follow = [jobs.RemindApprovers(req.request_id, n),
                  jobs.Dm(req.request_id, "approvers_reminded",
                          {"request_id": req.request_id, "reminded": reminded, "reminder": n}, tag=str(n))]
    try:
        deps.store.transition(req, after, event, owed(follow))
    except Conflict:
        return []  # decided, or another sweep reminded, meanwhile: the next sweep looks again
    return follow


def remind_approvers(deps: Deps, job: jobs.RemindApprovers) -> None:
    """DM each approver who could still decide it, with the card's buttons, each once."""
    from ..slack import views

    key = key_of(job)
    req = deps.store.get(job.request_id)
    if req is None or req.status is not RequestStatus.PENDING:
        deps.store.settle(job.request_id, key, 2**31)  # decided meanwhile: nobody needs reminding
        return
    now = deps.now()
    text, blocks = views.approval_reminder(req, deps.people, job.reminder)
    dm_each(deps, req, key, who_to_remind(deps, req, now), text=text, blocks=blocks, event_type="approval_reminder",
            payload={"request_id": req.request_id, "reminder": job.reminder}, match={"reminder": job.reminder})
    deps.store.settle(req.request_id, key, 2**31)


def _escalate(deps: Deps, req: Request, now: datetime) -> list[jobs.Job]:
    role = deps.role_of(req)
    fallback = [p for p in (role.fallback_approvers if role is not None else ()) if p not in role.approvers]
    after, event = req.escalate(now, fallback)
    rid = req.request_id
    follow: list[jobs.Job] = [jobs.Escalated(rid), jobs.Card(rid),
                              jobs.Dm(rid, "approval_escalated", {"request_id": rid, "fallback_approvers": fallback})]
    try:
        deps.store.transition(req, after, event, owed(follow))
    except Conflict:
        return []
    return follow


def post_escalation(deps: Deps, job: jobs.Escalated) -> None:
    """The approvals channel is told, once: who may decide it now (fallback approvers included)."""
    from ..domain.decide import deciders
    from ..slack import views

    req = deps.store.get(job.request_id)
    if req is None or req.status is not RequestStatus.PENDING:
        deps.store.settle(job.request_id, "escalated", 2**31)
        return
    role = deps.role_of(req)
    who = deciders(req, role) if role is not None else ()
    text = views.escalation_text(req, deps.people, [p for p in who if p != req.requester or role.self_approval])
    # not ``request_id``: the card is the approvals channel's one message with that key (a card
    # whose own answer was lost is looked up by it)
    deliver_once(deps, req.request_id, "escalated", channel=deps.catalog.approvals_channel, text=text, blocks=None,
                 event_type="approval_escalated", payload={"escalated_request": req.request_id, "deciders": list(who)},
                 match={"escalated_request": req.request_id})
    deps.store.settle(req.request_id, "escalated", 2**31)
