"""Jobs that change IAM: make an approved grant, and end one (revoked or expired).

Each re-reads the record first and does nothing when the record says the work is done
or no longer wanted, so a retried job (worker redelivery, the sweep) converges. IAM
calls are idempotent (see the grants adapter).
"""

from __future__ import annotations

from .. import cutoff
from .. import policy as pol
from ..domain.decide import decide_grant
from ..domain.errors import Conflict, GrantLimitReached, GrantMismatch
from ..domain.lifecycle import GrantStatus
from ..domain.model import Request, iso_z
from . import jobs
from .delivery import owed
from .deps import Deps
from .notify import granted_payload

#: attempts at an IAM grant before it is given up as FAILED (the sweep retries in between)
MAX_GRANT_ATTEMPTS = 3


def make_grant(deps: Deps, job: jobs.Grant) -> list[jobs.Job]:
    rid = job.request_id
    req = deps.store.get(rid)
    if req is None or req.grant_status is not GrantStatus.GRANTING:
        return []  # already granted, failed or ended: a retried job does nothing
    now = deps.now()
    # Defence in depth: the record must be what Drawbridge's own approval path would have
    # written, judged against the catalog and the audit trail *now* (a record put into the
    # table by anything else must not become a grant).
    history = deps.store.history(rid)
    if not agrees_with_history(req, history):
        return fail_grant(deps, req, "refused: the record is not where its audit trail left it (written by "
                                     "something other than Drawbridge)")
    recorded = [e.actor for e in history if e.action == "approved"]
    broke_glass = any(e.action == "break_glass" and e.actor == req.requester and e.at == req.decided_at
                      for e in history)
    role = deps.role_of(req)
    check = decide_grant(req, role, deps.catalog.people.get(req.requester), now, recorded,
                         recorded_break_glass=broke_glass,
                         recorded_escalation=any(e.action == "escalated" for e in history))
    if not check.allowed and getattr(role, "unresolved_groups", ()):
        # Slack did not say who is in a user group just now: not a "no" - an attempt that
        # failed, retried (by the sweep) up to MAX_GRANT_ATTEMPTS like an IAM error
        exc = GroupsUnresolved(f"Slack did not say who is in {', '.join(role.unresolved_groups)}; "
                               f"without them: {check.reason}")
        _note_attempt(deps, req, exc)
        raise exc
    if not check.allowed:
        return fail_grant(deps, req, f"refused: {check.reason}")
    if now >= req.expires_at:
        return fail_grant(deps, req, "the grant could not be applied before it would have expired")
    document = pol.grant_policy(req.role_arn, req.expires_at, rid)
    try:
        arn = deps.grants.grant(
            principal=req.principal, request_id=rid, document=document,
            description=pol.description(rid, req.requester, req.label, req.expires_at),
            tags={"drawbridge:request-id": rid, "drawbridge:expires-at": iso_z(req.expires_at),
                  "drawbridge:requester": req.requester},
        )
    except (GrantLimitReached, GrantMismatch) as exc:
        return fail_grant(deps, req, str(exc))
    except Exception as exc:
        _note_attempt(deps, req, exc)
        raise
    after, event = req.granted(now, arn, _mfa_serial(deps, req))
    payload = granted_payload(after)
    follow: list[jobs.Job] = [jobs.Card(rid, "access_granted", payload), jobs.Dm(rid, "access_granted", payload)]
    try:
        deps.store.transition(req, after, event, owed(follow))
    except Conflict:
        return []  # another worker finished the same grant
    return follow


class GroupsUnresolved(RuntimeError):
    """A grant's approvers include a user group Slack could not resolve just now."""


def agrees_with_history(req: Request, history) -> bool:
    """Whether the record is where its audit trail left it: every change of a record comes
    with its event in one transaction, so the last event has the record's version and ends
    in its state. A record edited (or revived) behind Drawbridge's back does not."""
    from ..domain.model import state_of

    return bool(history) and history[-1].seq == req.version and history[-1].to_status == state_of(req)


def _mfa_serial(deps: Deps, req: Request) -> str | None:
    """The MFA device the DM's CLI profile names: the catalog's ``mfa_serial`` for the
    person if set, else the device IAM lists for them. Best effort: the grant stands
    without it (the DM then says to fill in the serial)."""
    person = deps.catalog.people.get(req.requester)
    if person is not None and person.mfa_serial:
        return person.mfa_serial
    try:
        return deps.grants.mfa_serial(req.principal)
    except Exception:  # noqa: BLE001 - a nicety for the DM, never a reason to fail a grant
        return None


def _note_attempt(deps: Deps, req: Request, exc: Exception) -> None:
    from .dispatch import run_all

    now = deps.now()
    note = f"{type(exc).__name__}: {exc}"[:300]
    if req.grant_attempts + 1 >= MAX_GRANT_ATTEMPTS:
        run_all(deps, fail_grant(deps, req, note, attempts=req.grant_attempts + 1))
        return
    after, event = req.grant_attempt_failed(now, note)
    try:
        deps.store.transition(req, after, event)
    except Conflict:
        pass


def fail_grant(deps: Deps, req: Request, why: str, attempts: int | None = None) -> list[jobs.Job]:
    now = deps.now()
    # A grant that was ACTIVE (its policy vanished) may have live sessions: cut them off,
    # from the end IAM may have honoured it until (now, plus propagation).
    cut_before = cutoff.grant_end(req.expires_at, now) if _may_cut(deps, req) else None
    after, event = req.grant_failed(now, why, attempts, cut_before=cut_before)
    cut: list[jobs.Job] = [jobs.CutSessions(req.request_id)] if cut_before else []
    # What a failure owes people: the card, the requester and #security - recorded with the
    # failure itself, so a Slack outage at this moment delays the news but never loses it.
    told = cut + [jobs.Card(req.request_id, "access_revoked", {"request_id": req.request_id, "revoked_by": None,
                                                         "reason": why}),
            jobs.Dm(req.request_id, "access_revoked", {"request_id": req.request_id, "revoked_by": None,
                                                       "reason": why}),
            jobs.Security("grant_failed", {"request_id": req.request_id, "reason": why})]
    try:
        deps.store.transition(req, after, event, owed(told))
    except Conflict:
        return []
    # Make sure nothing of a half-made grant is left in IAM. Best effort: if IAM fails
    # here too (it is often why the grant failed), the card, the DM and #security must
    # still be told; the policy, if any, no longer has a live record, so the next
    # sweep's reconcile removes it (and reports it).
    try:
        deps.grants.revoke(principal=req.principal, request_id=req.request_id)
    except Exception as exc:  # noqa: BLE001
        why = f"{why} (removing what was made failed too: {type(exc).__name__}; the sweep removes it)"
    # Nobody revoked it: no person key (metadata names people only), the reason says why.
    payload = {"request_id": req.request_id, "revoked_by": None, "reason": why}
    card: list[jobs.Job] = [] if cut else [jobs.Card(req.request_id, "access_revoked", payload)]
    return cut + card + [jobs.Dm(req.request_id, "access_revoked", payload),
                         jobs.Security("grant_failed", {"request_id": req.request_id, "reason": why})]


def end_grant(deps: Deps, job: jobs.EndGrant) -> list[jobs.Job]:
    """Remove the grant from IAM, then record REVOKED (asked for) or EXPIRED (time is up).

    An expiry of a grant with an extension open (asked, or approved and being applied) is
    made under the grant's lease (usecases/extend.py), which the extension's IAM switch holds
    too: so the expiry never removes a policy that an extension has just lengthened, and an
    extension never switches a policy being removed. Another holder: nothing now (the next
    sweep ends it, or the extension has moved the expiry)."""
    from .extend import GrantBusy, holding

    req = deps.store.get(job.request_id)
    if req is None or not (req.grant_status is GrantStatus.ACTIVE and req.extension is not None
                           and req.extension.open and deps.now() >= req.expires_at):
        return _end_grant(deps, req)
    try:
        with holding(deps, req.request_id) as lease:
            return _end_grant(deps, deps.store.get(job.request_id), lease)
    except GrantBusy:
        return []


def _end_grant(deps: Deps, req: Request | None, lease=None) -> list[jobs.Job]:
    if req is None:
        return []
    now = deps.now()
    if req.grant_status is GrantStatus.REVOKING:
        event_type, payload = "access_revoked", {"request_id": req.request_id, "revoked_by": req.ended_by}
        move = req.revoked
    elif req.grant_status is GrantStatus.ACTIVE and now >= req.expires_at:
        ext = req.extension
        if ext is not None and ext.state == ext.APPROVED:
            # Approved while the grant lived, not in IAM yet (its worker died): apply it; the
            # extension fails (and this ends the grant) if it cannot be applied in time.
            from .extend import LATE_APPLY

            if now < req.expires_at + LATE_APPLY:
                return [jobs.ExtendGrant(req.request_id, ext.n)]
        event_type, payload = "access_expired", {"request_id": req.request_id}
        move = req.expire_grant
    else:
        return []
    if lease is not None:
        lease.check()  # still ours right before the removal
    strangers = deps.grants.revoke(principal=req.principal, request_id=req.request_id) or []
    detached = deps.now()
    cut_before = None
    if _may_cut(deps, req):
        # the last moment IAM may have honoured the grant: its expiry, or for a revoke, the
        # detach that just succeeded plus propagation (chalicelib/cutoff.py, grant_end)
        cut_before = cutoff.grant_end(req.expires_at, None if event_type == "access_expired" else detached)
    after, event = move(now, cut_before=cut_before)
    told: list[jobs.Job] = [jobs.Card(req.request_id, event_type, payload),
                            jobs.Dm(req.request_id, event_type, payload)]
    if strangers:  # the grant had been copied to other users by hand: taken back, and said
        told.append(jobs.Security("grant_drift", {
            "request_id": req.request_id, "users": [p.key for p in strangers],
            "state": f"record {after.grant_status.value}", "action": "taken_back_at_end"}))
    cut: list[jobs.Job] = []
    if cut_before is not None:  # their sessions too: they held the same grant
        cut = [jobs.CutSessions(req.request_id, [p.name for p in strangers if p.kind == p.IAM_USER])]
    if req.granted_at is not None:  # what was done with it, in the card's thread, once it settles
        from .activity import owe_digest

        owe_digest(deps, req.request_id, after.ended_at or now)
    try:
        deps.store.transition(req, after, event, owed(cut + told))
    except Conflict:
        return []  # someone else recorded the end; IAM removal above is idempotent
    # The cut first, so that the card and the DM say how it went: it brings the card up to
    # date itself (success or failure), so the card is not updated twice.
    return cut + [j for j in told if not (cut and isinstance(j, jobs.Card))]


def _may_cut(deps: Deps, req: Request) -> bool:
    """Sessions can outlive this grant's end: cut-offs are on and the grant was ACTIVE."""
    return deps.cuts is not None and req.granted_at is not None and req.expires_at is not None
