"""Use case: the sweep (every minute).

Ends grants past expiry, expires stale pending requests, retries grants or revocations
a crashed worker left behind (all from the sparse ``due`` index, so the cost follows what
is live, not history), then reconciles IAM with the table, and checks that every alert path still sends its
heartbeat (:mod:`chalicelib.usecases.liveness`).

What one run costs IAM does not grow with the number of live grants N beyond a fixed cap:
one ``ListPolicies`` page per 1,000 grant policies (IAM's quota of customer-managed policies,
1,500 by default and 5,000 at most per account, makes that 1 to 5 pages), a
``ListEntitiesForPolicy`` for each policy whose attachment count is off (drift only), and
the rotation: the holders of ``verify_slice_size(N) = min(VERIFY_CAP, ceil(N / VERIFY_ROUNDS))``
live grants, at most 30 per run, so every live grant's holders are verified at least once an
hour while N <= 1,800 (see :func:`reconcile`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..domain.duration import format_duration
from ..domain.errors import Conflict
from ..domain.lifecycle import GrantStatus, RequestStatus
from .. import cutoff
from ..domain.model import Request, iso_z
from ..domain.timing import IAM_SETTLE, MAX_SESSION
from . import access_review, alert_digest, jobs, liveness
from .deps import Deps
from .delivery import ReviewGivenUp, gave_up, key_of, max_attempts, owed, retry_at
from .dispatch import OnError, hand_off, run_all
from .grant import fail_grant
from .review import review_step

#: The most live grants whose holders (``ListEntitiesForPolicy``) one run verifies: the fixed
#: cap on the rotation's IAM calls, whatever the number of live grants.
VERIFY_CAP = 30
#: The rotation takes ``ceil(N / VERIFY_ROUNDS)`` grants a run, so it passes every live grant
#: in at most 50 runs (minutes); the other 10 of the hour absorb failed runs and grants added
#: meanwhile (N growing by up to a fifth during one pass).
VERIFY_ROUNDS = 50
#: Every live grant's holders are verified at least this often - while N <= VERIFY_CAP x 60
#: (1,800). Beyond that a pass takes ceil(N / VERIFY_CAP) minutes: the report says so
#: (``verify_period``) and the sweep handler logs a warning.
VERIFY_PERIOD = timedelta(hours=1)


def rotation_key(request_id: str) -> str:
    """A grant's place in the rotation: by a hash of its id, so that grants made meanwhile
    land anywhere in the order (request ids sort by day: today's would all land in one
    stretch, and could all land ahead of the same grant)."""
    return f"{zlib.crc32(request_id.encode('utf-8')):08x}#{request_id}"


def verify_slice_size(n: int) -> int:
    """How many of ``n`` live grants one run verifies the holders of."""
    return min(VERIFY_CAP, -(-n // VERIFY_ROUNDS))


@dataclass
class SweepReport:
    looked_at: int = 0
    drift: int = 0
    expired_grants: int = 0
    expired_requests: int = 0
    retried: int = 0
    errors: int = 0
    delivered: int = 0  # messages still owed that this sweep delivered
    undelivered: int = 0  # ... and that failed again (retried later, with backoff)
    handed_off: int = 0  # reviews handed to the worker (owed on-demand ones, the weekly backstop)
    reminded: int = 0  # waiting requests whose approvers this sweep reminded
    digests_shown: int = 0  # burst digests whose last calls this sweep showed (alert_digest.py)
    digests_pending: int = 0  # ... that Slack did not take yet (the next call or sweep shows them)
    paths_silent: int = 0  # alert paths whose heartbeat this sweep found missing (liveness.py)
    paths_restored: int = 0  # ... whose return this sweep finished telling
    # How far the rotation got: not something that happened, so not part of equality (a
    # sweep that found nothing to do still equals SweepReport()).
    verified: int = field(default=0, compare=False)  # live grants whose holders this run asked for
    verify_period: int = field(default=0, compare=False)  # runs (minutes) a pass over all takes now


def sweep(deps: Deps, on_error: OnError | None = None) -> SweepReport:
    now = deps.now()
    report = SweepReport()

    def counted(job, exc: Exception) -> None:  # a job that fails inside the sweep is an error too
        report.errors += 1
        if on_error is None:
            raise exc
        on_error(job, exc)

    for req in deps.store.due(now):
        report.looked_at += 1
        try:
            run_all(deps, _sweep_one(deps, req, now, report), counted)
            if req.break_glass:  # its review's reminder or escalation, whatever the grant's state
                run_all(deps, review_step(deps, req.request_id, now), counted)
        except Exception as exc:  # noqa: BLE001 - one bad item must not stop the sweep
            report.errors += 1
            if on_error is None:
                raise
            on_error({"job": "sweep", "request_id": req.request_id}, exc)
    try:
        run_all(deps, reconcile(deps, report), counted)
    except Exception as exc:  # noqa: BLE001 - reconcile again next minute
        report.errors += 1
        if on_error is None:
            raise
        on_error({"job": "reconcile"}, exc)
    # The alert path first: burst digests and the alert paths' heartbeats never wait behind
    # messages owed (a slow Slack there must not delay telling a silent alert path).
    try:
        flushed = alert_digest.flush_due(deps)
        report.digests_shown, report.digests_pending = flushed["digests_shown"], flushed["digests_pending"]
    except Exception as exc:  # noqa: BLE001 - the next sweep flushes them
        report.errors += 1
        if on_error is None:
            raise
        on_error({"job": "alert_digests"}, exc)
    try:
        report.paths_silent, report.paths_restored = liveness.check(deps)
    except Exception as exc:  # noqa: BLE001 - the next sweep looks again
        report.errors += 1
        if on_error is None:
            raise
        on_error({"job": "alert_path_liveness"}, exc)
    deliver_owed(deps, report, on_error)
    access_review.sweep_backstop(deps, report, on_error)  # this week's review, if Monday's run failed
    return report


def deliver_owed(deps: Deps, report: SweepReport, on_error: OnError | None = None) -> None:
    """Every message a change owes is delivered in the end: retry what is still owed."""
    for item in deps.store.owed_due(deps.now()):
        if item.job.get("job") == jobs.AccessReview.kind:
            _owed_review(deps, item, report, on_error)
            continue
        failed: list[Exception] = []
        run_all(deps, [item.job], lambda job, exc: failed.append(exc))
        try:
            if not failed:
                deps.store.settle(item.request_id, item.key, item.version)
                report.delivered += 1
                continue
            report.undelivered += 1
            report.errors += 1
            if item.attempts + 1 >= max_attempts(item.key):  # given up: the error below is logged with it
                deps.store.settle(item.request_id, item.key, item.version)
            else:
                deps.store.retry_later(item, retry_at(deps, item.attempts + 1))
            if on_error is not None:
                on_error(item.job, failed[0])
        except Exception as exc:  # noqa: BLE001 - the next sweep sees the item again
            report.errors += 1
            if on_error is None:
                raise
            on_error(item.job, exc)


def _owed_review(deps: Deps, item, report: SweepReport, on_error: OnError | None) -> None:
    """An owed on-demand access review is never run in the sweep (a 90-day review on a slow
    Slack or table can outlast the sweep's 60 s, and Lambda would kill the sweep with it).
    Its next try is pushed forward first - a lease: a run killed mid-way cannot keep it at
    the head of the queue - then it is handed to the worker, which settles it once delivered
    (locally, without a worker, it runs here, after the lease). After ``REVIEW_MAX_ATTEMPTS``
    hand-offs that did not deliver it, the person is told, once, and only then is it
    settled; not while an attempt is delivering it (that one may still succeed)."""
    from .access_review import dm_scope, review_in_flight

    def failure(exc: Exception) -> None:
        report.undelivered += 1
        report.errors += 1
        if on_error is None:
            raise exc
        on_error(item.job, exc)

    try:
        if item.attempts >= max_attempts(item.key):
            files = deps.store.delivery(dm_scope(jobs.as_job(item.job)), "files")
            if files is not None and files.ts:  # delivered, its settle lost (or an item keyed before
                deps.store.settle(item.request_id, item.key, item.version)  # review:<days>d:): no "failed" DM
                report.delivered += 1
                return
            if review_in_flight(deps, item.job):
                deps.store.retry_later(item, retry_at(deps, item.attempts))
                return
            try:
                gave_up(deps, item.job)  # before settling: a failure leaves it owed, told next time
            except Exception:
                deps.store.retry_later(item, retry_at(deps, item.attempts))
                raise
            deps.store.settle(item.request_id, item.key, item.version)
            raise ReviewGivenUp(f"access review not delivered after {item.attempts} attempts; the person was told")
        deps.store.retry_later(item, retry_at(deps, item.attempts + 1))  # the lease, before it runs
        failed: list[Exception] = []
        if hand_off(deps, [item.job], lambda job, exc: failed.append(exc)):
            report.handed_off += 1
        elif failed:
            raise failed[0]
        else:
            report.delivered += 1
    except Exception as exc:  # noqa: BLE001 - counted; the next try is already booked
        failure(exc)


def _sweep_one(deps: Deps, req: Request, now: datetime, report: SweepReport) -> list[jobs.Job]:
    rid = req.request_id
    if req.status is RequestStatus.PENDING and now >= req.pending_until:
        waited = format_duration(int(deps.pending_window.total_seconds()))
        after, event = req.expire_pending(now, f"not approved within {waited}")
        payload = {"request_id": rid}
        follow: list[jobs.Job] = [jobs.Card(rid, "access_expired", payload), jobs.Dm(rid, "access_expired", payload)]
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            return []
        report.expired_requests += 1
        return follow
    if req.status is RequestStatus.PENDING:
        from .remind import remind_step

        follow = remind_step(deps, req, now)
        report.reminded += bool(follow)
        return follow
    if req.grant_status is GrantStatus.ACTIVE and now >= req.expires_at:
        report.expired_grants += 1
        return [jobs.EndGrant(rid)]
    if req.grant_status is GrantStatus.GRANTING:
        report.retried += 1
        return [jobs.Grant(rid)]
    if req.grant_status is GrantStatus.REVOKING:
        report.retried += 1
        return [jobs.EndGrant(rid)]
    return []


def reconcile(deps: Deps, report: SweepReport | None = None, deep: bool | None = None) -> list[jobs.Job]:
    """Make IAM and the table agree; report every difference to the security channel.

    * a Drawbridge policy (``/drawbridge/drawbridge-<id>``) whose request is not a live
      grant - restored, copied by hand, or left by a crash - is detached and deleted;
    * a live grant's policy also attached to somebody else is taken back from them;
    * an ACTIVE grant whose policy is no longer attached is marked FAILED.
    Policies Drawbridge did not create are never looked at, let alone touched.

    Cost per run: ``ListPolicies`` (one page per 1,000 grants). Who holds a policy is asked
    at once when its attachment count is off (2 or more for a live grant; any for a policy
    without one: found the minute it happens; a live grant whose count reads 0 is judged
    vanished without asking), and otherwise for a slice of the live grants, the *rotation*,
    which also catches a grant moved to another single user (its count still reads 1). The
    grants whose count looks right are taken in the order of :func:`rotation_key` from where
    the last run stopped (a cursor in the table), ``verify_slice_size(N)`` a run, wrapping
    round. A pass over N grants takes ``ceil(N / that)`` runs: at most 50 while N <= 1,500
    and 60 while N <= 1,800, so every live grant is verified within the hour; the 10 runs to
    spare absorb failed runs and grants made during a pass (up to a fifth of N more ahead of
    a grant than end meanwhile). The cursor moves only after its slice was verified, and only
    from the version it was read at: a failed run leaves the slice to the next run, two runs
    at once verify one slice twice, and neither skips a grant.
    ``deep=True`` verifies every live grant now, ``deep=False`` none (tests, operators).
    """
    report = report or SweepReport()
    now = deps.now()
    follow: list[jobs.Job] = []
    # IAM first, the table after: a grant's record is GRANTING before its policy exists, so
    # every policy in this listing has a record that reads GRANTING or later below, however
    # slowly the listing came back (an approval landing meanwhile cannot look like a stray).
    policies = deps.grants.drawbridge_policies()
    live = {r.request_id: r for r in deps.store.live()}
    # The grants whose count (1) looks right: who holds them is asked for a slice of them.
    looks_right = sorted(rotation_key(rid) for rid, _, count in policies
                         if count == 1 and rid in live and live[rid].grant_status is GrantStatus.ACTIVE)
    turn: list[str] = []
    version = 0
    if deep is None:
        turn, version = _rotation(deps, looks_right, report)
        verify = {key.split("#", 1)[1] for key in turn}
    else:
        verify = {key.split("#", 1)[1] for key in looks_right} if deep else set()
    held: dict[str, bool] = {}  # request id -> its owner holds the policy
    for rid, arn, count in policies:
        req = live.get(rid) or deps.store.get(rid)
        if req is not None and req.grant_status in (GrantStatus.GRANTING, GrantStatus.REVOKING):
            continue  # in flight: the grant / end_grant jobs own it
        active = req is not None and req.grant_status is GrantStatus.ACTIVE
        if active and (count == 0 or (count == 1 and rid not in verify)):
            held[rid] = count == 1
            continue
        # Re-read right before changing IAM: only a record that can no longer hold a grant
        # lets its policy go (a PENDING one could be approved any moment: next sweep).
        req = deps.store.get(rid)
        if req is not None and (req.status is RequestStatus.PENDING
                                or req.grant_status in (GrantStatus.GRANTING, GrantStatus.REVOKING)):
            continue
        holders = deps.grants.attached_principals(arn)  # asked after the re-read:
        if holders is None:
            continue  # gone meanwhile - an ending removed it on purpose: not drift
        if not holders and req is not None and req.grant_status is not GrantStatus.ACTIVE:
            # Held by nobody and its record has ended: what an ending leaves between detaching
            # and deleting (or has just deleted). Tidied up, not reported as drift.
            deps.grants.remove_policy(rid, [])
            continue
        active = req is not None and req.grant_status is GrantStatus.ACTIVE
        state = "no record" if req is None else f"record {req.grant_status.value}"
        strangers = [p for p in holders if p != req.principal] if active else holders
        if active:
            held[rid] = req.principal in holders
            if not strangers:
                continue  # as it should be
        notice = jobs.Security("grant_drift", {
            "request_id": rid, "policy_arn": arn, "users": [p.key for p in holders],
            "state": state, "action": "detached" if active else "removed"})
        # Owed before IAM changes: once the policy is gone, no later sweep would find it again.
        deps.store.owe(rid, key_of(notice), jobs.to_wire(notice), now, req.version if req else 0,
                       req.requester if req else None)
        cut: list[jobs.Job] = []
        # Whoever held it may have role sessions from it (usecases/cut.py): a copy of a live
        # grant, or a policy of an ended grant put back while the grant's time still ran.
        # Cut those issued before they lost it, which is now (plus propagation); owed before
        # IAM changes, like the notice. (A policy without a record names no role: not cut.)
        could_use = req is not None and req.granted_at is not None and req.expires_at is not None \
            and now < req.expires_at + MAX_SESSION
        if deps.cuts is not None and strangers and could_use:
            end = cutoff.grant_end(req.expires_at, now)
            cut = [jobs.CutSessions(rid, [p.name for p in strangers if p.kind == p.IAM_USER], iso_z(end))]
            deps.store.owe(rid, key_of(cut[0]), jobs.to_wire(cut[0]), now, req.version, req.requester)
        if active:
            for principal in strangers:  # copied to somebody else: take it back from them only
                deps.grants.revoke_from(principal, rid)
        else:
            deps.grants.remove_policy(rid, holders)
        report.drift += 1
        follow += [notice, *cut]
    if turn:  # its slice verified: the next run goes on from here (unless a run beat it to it)
        deps.store.move_verify_cursor(turn[-1], version)
    for req in live.values():
        if req.grant_status is not GrantStatus.ACTIVE or now >= req.expires_at:
            # An ACTIVE grant past its expiry is the due loop's (end_grant records EXPIRED,
            # every minute until it succeeds). If its removal was interrupted after IAM let
            # go, the policy is gone on purpose: not "vanished".
            continue
        if req.granted_at is None or now - req.granted_at < IAM_SETTLE:
            continue  # too fresh to trust a listing without it (see IAM_SETTLE)
        if held.get(req.request_id, False):
            continue
        latest = deps.store.get(req.request_id)  # re-read before failing it
        if latest is None or latest.version != req.version:
            continue  # it moved on meanwhile (revoked, expired): the next sweep judges it
        report.drift += 1
        follow.extend(fail_grant(deps, latest, "the grant's IAM policy vanished (removed outside Drawbridge)"))
    return follow


def _rotation(deps: Deps, looks_right: list[str], report: SweepReport) -> tuple[list[str], int]:
    """This run's slice of ``looks_right`` (sorted rotation keys): the next grants after
    the cursor, wrapping round; and the cursor's version it was read at."""
    if not looks_right:
        return [], 0
    size = verify_slice_size(len(looks_right))
    cursor, version = deps.store.verify_cursor()
    ahead = [rid for rid in looks_right if rid > cursor]
    turn = (ahead + [rid for rid in looks_right if rid <= cursor])[:size]
    report.verified = len(turn)
    report.verify_period = -(-len(looks_right) // size)
    return turn, version
