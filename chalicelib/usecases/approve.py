"""Use case: an approver clicks Approve or Deny on a card (or in the App Home), or somebody
clicks Revoke on an active grant in the App Home (the revoke use case, as the command).

Re-read the record, decide (pure: ``decide_approval`` / ``decide_deny`` against the
catalog as it is *now*), write conditionally; on a lost write, re-read and decide again,
so two approvers at once end as one clean outcome.
"""

from __future__ import annotations

from ..domain import decide as rules
from ..domain.errors import Conflict
from ..slack.parse import Click, is_request_id
from . import jobs
from .deps import RETRIES, Deps
from ..slack.views import APPROVE, APPROVE_EXTENSION, DENY, DENY_EXTENSION, DENY_WITH_REASON, REVOKE
from .commands import admit
from .delivery import owed
from .outcomes import (Answer, BadButtonValue, Cancelled, ClickDone, Outcome, Refused, Revoking, TooBusy,
                       UnknownButton, UnknownRequest, WrongWorkspace)


def admit_click(deps: Deps, click: Click) -> Outcome | None:
    """Everything that can be refused before the table is touched: the workspace and app,
    the button, its value, and whether the clicker is in the catalog."""
    if isinstance(refused := admit(deps, click.team_id, click.api_app_id, click.user_id), WrongWorkspace):
        return refused
    if click.action_id not in (APPROVE, DENY, DENY_WITH_REASON, APPROVE_EXTENSION, DENY_EXTENSION, REVOKE):
        return UnknownButton()
    if not is_request_id(click.request_id):
        return BadButtonValue()
    if refused is not None and click.action_id == REVOKE:
        return Refused("you are not in the Drawbridge catalog, so you cannot revoke access")
    if refused is not None:  # not in the catalog
        verb = "approve" if click.action_id in (APPROVE, APPROVE_EXTENSION) else "deny"
        what = "extensions" if click.action_id in (APPROVE_EXTENSION, DENY_EXTENSION) else "requests"
        return Refused(f"you are not in the Drawbridge catalog, so you cannot {verb} {what}")
    return None


def decide_click(deps: Deps, click: Click) -> Answer:
    if (refused := admit_click(deps, click)) is not None:
        return Answer(refused)
    clicker = deps.catalog.person_by_slack(click.user_id).key
    if click.action_id == REVOKE:  # the App Home's Revoke: the same rules as the command
        from .revoke import revoke

        answer = revoke(deps, clicker, click.request_id)
        done = isinstance(answer.outcome, (Cancelled, Revoking))  # the re-published home shows it
        return Answer(ClickDone(), answer.jobs) if done else answer
    if click.action_id in (APPROVE_EXTENSION, DENY_EXTENSION):
        from .extend import decide_click as decide_extension

        return decide_extension(deps, click, clicker, approve=click.action_id == APPROVE_EXTENSION)
    if click.action_id == DENY_WITH_REASON:
        return ask_why(deps, click, clicker)
    return decide(deps, clicker, click.request_id, approve=click.action_id == APPROVE)


def ask_why(deps: Deps, click: Click, clicker: str) -> Answer:
    """*Deny with reason…*: open the deny form (``views.open``, now: the click's trigger id
    lasts 3 seconds) if a Deny by this person would count now; nothing is written. Its
    Submit is :func:`decide` with the reason (``service.submit_form``)."""
    from ..domain.errors import ViewNotOpened
    from ..slack import views
    from .outcomes import DenyFormNotOpened

    req = deps.store.get(click.request_id)
    if req is None:
        return Answer(UnknownRequest(click.request_id))
    role = deps.role_of(req)
    decision = rules.decide_deny(req, role, clicker, deps.now())
    if decision.outcome is rules.Outcome.REFUSED:
        return Answer(Refused(decision.reason + _unresolved_note(req, role, clicker)))
    try:
        deps.slack.open_view(click.trigger_id, views.deny_form(req, click.channel_id))
    except ViewNotOpened as exc:
        return Answer(DenyFormNotOpened(req.request_id, exc.error))
    return Answer(ClickDone())


def decide(deps: Deps, clicker: str, request_id: str, approve: bool, why: str = "") -> Answer:
    """Approve or deny ``request_id`` as ``clicker`` (``why``: a denier's own reason),
    decided on a fresh read; a lost write is re-read and decided again."""
    decide_one = rules.decide_approval if approve else rules.decide_deny
    for _ in range(RETRIES):
        req = deps.store.get(request_id)
        if req is None:
            return Answer(UnknownRequest(request_id))
        now = deps.now()
        role = deps.role_of(req)
        decision = decide_one(req, role, clicker, now)
        o = rules.Outcome
        if decision.outcome is o.REFUSED:
            return Answer(Refused(decision.reason + _unresolved_note(req, role, clicker)))
        if decision.outcome is o.DENIED:
            after, event = req.deny(now, clicker, decision.reason, why)
        else:
            move = req.approve if decision.outcome is o.APPROVED else req.count_approval
            after, event = move(now, clicker, decision.reason)
        rid = req.request_id
        if decision.outcome is o.DENIED:
            payload = {"request_id": rid, "denied_by": clicker, **({"reason": why} if why else {})}
            follow: list[jobs.Job] = [jobs.Card(rid, "access_denied", payload), jobs.Dm(rid, "access_denied", payload)]
        else:
            payload = {"request_id": rid, "approver": clicker}
            follow = [jobs.Card(rid, "access_approved", payload)]
            if decision.outcome is o.APPROVED:  # the "granted" (or "failed") DM names every approver
                follow.append(jobs.Grant(rid))
            else:  # the requester hears of each approval that counts, once per approver
                # the rule's count (approvals by approvers now, against the stricter requirement)
                follow.append(jobs.Dm(rid, "access_approved", {**payload, "approvals": decision.count,
                                                               "required": decision.required}, tag=clicker))
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            continue  # somebody else clicked first: re-read and decide again
        return Answer(ClickDone(), follow)
    return Answer(TooBusy(request_id))


def _unresolved_note(req, role, clicker: str) -> str:
    """Why a clicker who is no approver may have been one: a user group of the role's that
    Slack could not resolve just now supplied nobody (usecases/groups.py)."""
    unresolved = getattr(role, "unresolved_groups", ())
    if not unresolved or clicker in rules.deciders(req, role):
        return ""
    return (f" (nobody approves through {', '.join(unresolved)} now: Slack did not say who is in it; try again "
            "in a minute, and if that lasts ask an admin to check the handle in the catalog)")
