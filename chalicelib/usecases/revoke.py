"""Use case: ``/aws-access revoke <request-id>`` - cancel a pending request, or start
ending an active grant (the ``EndGrant`` job takes it out of IAM)."""

from __future__ import annotations

from ..domain import decide as rules
from ..domain.errors import Conflict
from . import jobs
from .delivery import owed
from .deps import RETRIES, Deps
from .outcomes import Answer, Cancelled, Refused, Revoking, TooBusy, UnknownRequest


def revoke(deps: Deps, actor: str, request_id: str) -> Answer:
    for _ in range(RETRIES):
        req = deps.store.get(request_id)
        if req is None:
            return Answer(UnknownRequest(request_id))
        now = deps.now()
        decision = rules.decide_revoke(req, deps.role_of(req), actor, now)
        if decision.outcome is rules.Outcome.REFUSED:
            return Answer(Refused(decision.reason))
        move = req.cancel if decision.outcome is rules.Outcome.CANCEL else req.revoke
        after, event = move(now, actor, decision.reason)
        payload = {"request_id": request_id, "revoked_by": actor}
        follow: list[jobs.Job] = [jobs.EndGrant(request_id)]
        if decision.outcome is rules.Outcome.CANCEL:
            follow = [jobs.Card(request_id, "access_revoked", payload)]
            if actor != req.requester:
                follow.append(jobs.Dm(request_id, "access_revoked", payload))
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            continue
        return Answer(Cancelled(after) if decision.outcome is rules.Outcome.CANCEL else Revoking(after), follow)
    return Answer(TooBusy(request_id))
