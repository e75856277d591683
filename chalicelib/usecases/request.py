"""Use case: a person asks for a role (``/aws-access <account> <role> <duration> [reason]``).

Read the catalog and the person's open requests, decide (pure: ``decide_request``), and
store the new request with one conditional write. The card is posted by a job.
"""

from __future__ import annotations

from datetime import timedelta

from ..domain.decide import decide_request
from ..domain.errors import Conflict
from ..domain.model import Request
from ..slack.parse import RequestCmd
from . import jobs
from .delivery import owed
from .deps import RETRIES, Deps
from .outcomes import Answer, Refused, Requested


def request_access(deps: Deps, person, cmd: RequestCmd) -> Answer:
    try:
        role = deps.catalog.find_role(cmd.account, cmd.role)
    except LookupError as exc:
        return Answer(Refused(str(exc.args[0] if exc.args else exc), "role"))
    open_requests = deps.store.open_for(person.key)
    decision = decide_request(person.key, role, duration=cmd.duration, reason=cmd.reason,
                              open_requests=open_requests, max_open=deps.max_open_per_user,
                              typed=(cmd.account, cmd.role))
    if not decision.allowed:
        return Answer(Refused(decision.reason, decision.about))
    now = deps.now()
    for _ in range(RETRIES):
        req, event = Request.requested(
            now, request_id=deps.new_id(now), requester=person.key, requester_slack=person.slack_user,
            principal=person.principal, account=role.account_key, account_id=role.account_id,
            role=role.key, role_arn=role.role_arn, production=role.production,
            duration_seconds=decision.seconds, reason=cmd.reason.strip(),
            approvals_required=role.approvals_required, pending_until=now + deps.pending_window,
            remind_at=now + timedelta(seconds=role.remind_after_seconds) if role.remind_after_seconds else None,
            escalate_at=now + timedelta(seconds=role.escalate_after_seconds) if role.escalate_after_seconds else None,
        )
        payload = {"request_id": req.request_id, "requester": req.requester, "account": req.account,
                   "role": req.role, "duration_seconds": req.duration_seconds, "reason": req.reason}
        follow = [jobs.Card(req.request_id, "access_requested", payload)]
        try:
            deps.store.create(req, event, owed(follow))
            break
        except Conflict:
            continue  # id collision: draw another
    else:
        raise RuntimeError("could not allocate a request id")
    # the reply names the people who could approve: the role's user groups resolved (deps.role_of)
    return Answer(requested(deps, req, None if role.groups else role), follow)


def requested(deps: Deps, req: Request, role=None) -> Requested:
    """What a new request's reply says (also the answer to a repeat of the command that made it)."""
    role = role or deps.role_of(req)
    approvers = tuple(a for a in (role.approvers if role else ()) if a != req.requester or role.self_approval)
    return Requested(req, approvers, deps.catalog.approvals_channel)
