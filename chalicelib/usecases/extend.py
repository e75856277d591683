"""Use case: lengthen an ACTIVE grant without a gap (``/aws-access extend``, issue 16).

1. The requester asks (``/aws-access extend <request-id> <duration> [reason]``): decided
   by ``decide_extend`` and recorded on the request (its state stays ACTIVE). The card
   shows the extension with its own Approve / Deny buttons, and each approver gets a DM
   with the same buttons. With ``extend_approvals = 0`` it is approved at once.
2. Approvers click (``approve_extension`` / ``deny_extension``): decided like a request's
   approval, against the role's ``extend_approvals``.
3. The final approval owes the :class:`~chalicelib.usecases.jobs.ExtendGrant` job. It
   re-derives the extension from the catalog *now* and the audit trail
   (``decide_extension_grant``), then makes the later expiry the grant policy's default
   version in one IAM call (``Grants.extend``): IAM evaluates either the old version or the
   new one, so there is no moment without access and never a second grant. Only then is
   the record's ``expires_at`` moved; the card and a DM (``access_extended``) follow.

The new expiry is the old expiry plus the duration (the clock starts where the grant
would have ended), and a grant never lasts longer in total, from its approval, than the
role's ``max_extended_duration``. A pending extension lapses when the grant ends.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator

from .. import policy as pol
from ..domain import decide as rules
from ..domain.errors import Conflict, DomainError, GrantMismatch
from ..domain.lifecycle import GrantStatus
from ..domain.model import Request, iso_z
from ..slack.parse import Click, ExtendCmd
from . import jobs
from .delivery import owed
from .deps import RETRIES, Deps
from .outcomes import Answer, ClickDone, ExtensionAsked, Refused, TooBusy, UnknownRequest

#: an extension approved while the grant lived but not yet in IAM when it expired (a worker
#: died) is still applied by the sweep this long after the old expiry; later it fails and the
#: grant ends (the requester asks for the role again)
LATE_APPLY = timedelta(minutes=10)
#: how long one job may keep a grant's policy to itself (an extension's switch, or an expiry
#: while an extension is open): far longer than the few IAM calls either makes
GRANT_LEASE = timedelta(minutes=1)
LEASE_TRIES = 3
LEASE_WAIT = 1.0


class GrantBusy(DomainError):
    """Another job holds the grant's lease (an extension being applied, or an expiry); retried."""


class _Lease:
    def __init__(self, deps: Deps, key: str, token: str) -> None:
        self.deps, self.key, self.token = deps, key, token

    def check(self) -> None:
        """Renew the lease, or GrantBusy if it ran out and another job took it: whatever this
        job was about to do next (remove the policy, record a switch) must not happen."""
        if self.deps.store.take_lease(self.key, self.token, self.deps.now(), GRANT_LEASE) is None:
            raise GrantBusy(f"lost the lease on {self.key}; retried")


@contextmanager
def holding(deps: Deps, request_id: str) -> Iterator[_Lease]:
    """The grant's lease (``LEASE#GRANT#<request id>``) for the body, or GrantBusy."""
    key, token = f"LEASE#GRANT#{request_id}", uuid.uuid4().hex
    for attempt in range(LEASE_TRIES):
        if deps.store.take_lease(key, token, deps.now(), GRANT_LEASE) is not None:
            break
        if attempt + 1 < LEASE_TRIES:
            deps.sleep(LEASE_WAIT)
    else:
        raise GrantBusy(f"another job is changing the grant {request_id}; retried")
    try:
        yield _Lease(deps, key, token)
    finally:
        try:
            deps.store.release_lease(key, token)
        except Exception:  # noqa: BLE001 - the lease runs out by itself
            pass


def ask(deps: Deps, person, cmd: ExtendCmd) -> Answer:
    """The requester asks for more time on their grant."""
    for _ in range(RETRIES):
        req = deps.store.get(cmd.request_id)
        if req is None:
            return Answer(UnknownRequest(cmd.request_id))
        now = deps.now()
        role = deps.role_of(req)
        decision = rules.decide_extend(req, role, person.key, duration=cmd.duration, reason=cmd.reason, now=now)
        if not decision.allowed:
            return Answer(Refused(decision.reason))
        after, event = req.request_extension(now, seconds=decision.seconds, required=role.extend_approvals,
                                             reason=cmd.reason.strip())
        ext = after.extension
        follow: list[jobs.Job] = [jobs.Card(req.request_id)]
        if ext.state == ext.APPROVED:  # no approval needed
            follow.append(jobs.ExtendGrant(req.request_id, ext.n))
        else:
            follow.append(jobs.AskApprovers(req.request_id, ext.n))
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            continue
        return Answer(ExtensionAsked(after, tuple(rules.extension_approvers(after, role)),
                                     deps.catalog.approvals_channel), follow)
    return Answer(TooBusy(cmd.request_id))


def decide_click(deps: Deps, click: Click, clicker: str, approve: bool) -> Answer:
    """An approver's Approve or Deny on an extension: re-read, decide, write conditionally."""
    decide = rules.decide_extension_approval if approve else rules.decide_extension_deny
    for _ in range(RETRIES):
        req = deps.store.get(click.request_id)
        if req is None:
            return Answer(UnknownRequest(click.request_id))
        if click.extension and (req.extension is None or req.extension.n != click.extension):
            return Answer(Refused(f"that button belongs to an earlier extension request of {req.request_id}; "
                                  "use the one on the card now"))
        now = deps.now()
        decision = decide(req, deps.role_of(req), clicker, now)
        o = rules.Outcome
        if decision.outcome is o.REFUSED:
            return Answer(Refused(decision.reason))
        move = {o.DENIED: req.deny_extension, o.APPROVED: req.approve_extension,
                o.COUNTED: req.count_extension_approval}[decision.outcome]
        after, event = move(now, clicker, decision.reason)
        rid, n = req.request_id, req.extension.n
        follow: list[jobs.Job] = [jobs.Card(rid)]
        if decision.outcome is o.DENIED:
            follow.append(jobs.Dm(rid, "extension_denied", {"request_id": rid, "denied_by": clicker,
                                                            "extension": n}, tag=str(n)))
        elif decision.outcome is o.APPROVED:
            follow.append(jobs.ExtendGrant(rid, n))
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            continue
        return Answer(ClickDone(), follow)
    return Answer(TooBusy(click.request_id))


def apply_extension(deps: Deps, job: jobs.ExtendGrant) -> list[jobs.Job]:
    """Put an approved extension into IAM (one policy-version switch), then record it.
    Owed (outbox key ``extend:<n>``) until it has run to an end: applied, failed, or no
    longer wanted; an IAM error, or another job holding the grant (GrantBusy), leaves it
    owed, and the sweep runs it again. Made under the grant's lease (:func:`holding`)."""
    with holding(deps, job.request_id) as lease:
        follow = _apply(deps, job, lease)
    deps.store.settle(job.request_id, f"extend:{job.extension}", 2**31)
    return follow


def _apply(deps: Deps, job: jobs.ExtendGrant, lease: _Lease) -> list[jobs.Job]:
    rid = job.request_id
    req = deps.store.get(rid)
    ext = req.extension if req is not None else None
    if req is None or ext is None or ext.n != job.extension or ext.state != ext.APPROVED:
        return []  # applied, failed or lapsed already: a retried job does nothing
    if req.grant_status is not GrantStatus.ACTIVE:
        return []  # ending: the ending lapses it
    from .grant import agrees_with_history

    now = deps.now()
    history = deps.store.history(rid)
    if not agrees_with_history(req, history):
        return _failed(deps, req, "refused: the record is not where its audit trail left it")
    check = rules.decide_extension_grant(req, deps.role_of(req), deps.catalog.people.get(req.requester),
                                         trail_of(history), now)
    if not check.allowed:
        return _failed(deps, req, f"refused: {check.reason}")
    if now >= req.expires_at + LATE_APPLY:
        return _failed(deps, req, f"it could not be applied before the grant expired at {iso_z(req.expires_at)}")
    new_expiry = req.expires_at + timedelta(seconds=ext.seconds)
    try:
        deps.grants.extend(principal=req.principal, request_id=rid,
                           document=pol.grant_policy(req.role_arn, new_expiry, rid),
                           expected_expiry=iso_z(req.expires_at))
    except GrantMismatch as exc:
        return _failed(deps, req, str(exc))
    lease.check()  # still ours: no expiry can have read the record meanwhile
    after, event = req.extended(deps.now(), new_expiry)
    payload = extended_payload(after)
    follow: list[jobs.Job] = [jobs.Card(rid), jobs.Dm(rid, "access_extended", payload, tag=str(ext.n))]
    try:
        deps.store.transition(req, after, event, owed(follow))
    except Conflict:
        # The record moved while IAM changed (a revoke: its ending takes the policy away,
        # whatever its version says). Still ACTIVE with this extension approved: stay owed,
        # and the retry finds IAM switched already and records it.
        latest = deps.store.get(rid)
        ext_now = latest.extension if latest is not None else None
        if latest is not None and latest.grant_status is GrantStatus.ACTIVE and ext_now is not None \
                and ext_now.n == job.extension and ext_now.state == ext_now.APPROVED:
            raise GrantBusy(f"{rid} changed while its extension was applied; retried") from None
        return []
    return follow


def trail_of(history) -> rules.ExtensionTrail:
    """The audit trail's account of a grant and its latest extension request (the events
    Drawbridge wrote: ``approved``, ``extension_requested`` with reason ``+<duration>[: why]``,
    ``extension_approved``)."""
    from ..domain.duration import DurationError, parse_duration

    approved = [e for e in history if e.action == "approved"]
    asked = [e for e in history if e.action == "extension_requested"]
    last = asked[-1] if asked else None
    seconds = None
    if last is not None and last.reason.startswith("+"):
        try:
            seconds = parse_duration(last.reason[1:].split(":", 1)[0].strip())
        except DurationError:
            seconds = None
    return rules.ExtensionTrail(
        approved_at=approved[-1].at if approved else None,
        asked_by=last.actor if last else None, asked_at=last.at if last else None, asked_seconds=seconds,
        approvers=[e.actor for e in history if last is not None and e.action == "extension_approved"
                   and e.seq > last.seq])


def _failed(deps: Deps, req: Request, why: str) -> list[jobs.Job]:
    after, event = req.extension_failed(deps.now(), why)
    rid = req.request_id
    n = req.extension.n
    follow: list[jobs.Job] = [jobs.Card(rid), jobs.Dm(rid, "extension_failed",
                                                      {"request_id": rid, "reason": why, "extension": n},
                                                      tag=str(n))]
    try:
        deps.store.transition(req, after, event, owed(follow))
    except Conflict:
        return []
    return follow


def extended_payload(req: Request) -> dict:
    """The ``access_extended`` metadata (docs/REFERENCE.md)."""
    ext = req.extension
    return {"request_id": req.request_id, "old_expires_at": iso_z(ext.old_expires_at),
            "expires_at": iso_z(req.expires_at), "approvers": list(ext.approvers)}
