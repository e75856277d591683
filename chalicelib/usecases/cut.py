"""Job: cut off the role sessions an ended grant let a person start (issue 15).

A grant stops new ``sts:AssumeRole`` calls when it ends, but a session issued before that
keeps working until it expires (up to the role's MaxSessionDuration). This job writes, in
the target role's cut-off policy (chalicelib/cutoff.py), a deny for the person's sessions
issued before the grant's end, and records when it did.

Order and failure
    The grant is taken out of IAM first (``end_grant``), and the record's ``cut_before``
    fixed with that change, which also owes this job (outbox key ``cut``): a worker that
    dies here leaves it to the sweep. A failed attempt is recorded (the card then says
    "sessions still live until ...", and #security is told once), and the job raises, so
    the sweep retries it with backoff. Once every session it was to end has expired on its
    own (``cut_before + MAX_SESSION``), it stops trying and records that.

One writer per role
    IAM has no compare-and-swap on policy versions, so two jobs merging into the same policy
    at once could each drop the other's cut-off. A lease in the table (``CUT#<role ARN>``)
    lets one job at a time read, merge and write a role's policy; a job that cannot take it
    waits a little, then leaves the work to a retry. After writing, the job reads the
    policy back and succeeds only if its cut-off is in force there (a holder that outlived
    its lease cannot make it record a cut-off that a later writer dropped). IAM's reads are
    eventually consistent, so the lease also keeps the last document written (the table
    reads consistently): its cut-offs are merged in too, and a stale read of the policy
    cannot make the next writer drop them.

Idempotent
    Merging a cut-off the policy already enforces changes nothing (no write). The deny is
    bounded by the grant's end, kept within the grant's own life whatever the record or the
    job says: a session of the same person under a later grant is issued after it and never
    denied, so a retried, late, duplicated or forged job cannot cut a later, valid grant -
    except in the end second (chalicelib/cutoff.py, "Rounding") and, after a revoke, for
    the IAM_SETTLE its bound reaches past the detach: a new grant made then works for
    sessions issued after the bound only, and its DM says so (usecases/notify.py).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from .. import cutoff
from ..domain.errors import Conflict, DomainError
from ..domain.model import Request, iso_z, parse_iso
from ..domain.timing import IAM_SETTLE, MAX_SESSION
from . import jobs
from .delivery import key_of, owed
from .deps import Deps
from .dispatch import run_all

#: how long one job may hold a role's cut-off policy (its IAM calls take seconds)
LEASE = timedelta(minutes=2)
#: a job does not start writing with less than this left of its lease
LEASE_MARGIN = timedelta(seconds=45)
#: waiting for another job's lease on the same role: tries, and seconds between them
LEASE_TRIES = 5
LEASE_WAIT = 1.0
#: reading the written policy back until it shows the new version: tries, seconds between
VERIFY_TRIES = 4
VERIFY_WAIT = 1.0


class CutBusy(DomainError):
    """Another job holds the role's cut-off policy; the cut is retried."""


class CutNotInForce(DomainError):
    """The cut-off was written but the policy read back does not enforce it."""


def lease_key(role_arn: str) -> str:
    return f"CUT#{role_arn}"


def cut_sessions(deps: Deps, job: jobs.CutSessions) -> list[jobs.Job]:
    req = deps.store.get(job.request_id)
    key = _key(job)
    if req is None:
        deps.store.settle(job.request_id, key, 2**31)
        return []
    if not job.end:
        if req.cut_before is None or req.sessions_cut_at is not None or req.cut_given_up_at is not None:
            deps.store.settle(req.request_id, key, req.version)
            return []  # nothing to cut, or done
        end = req.cut_before
        names = _unique([req.principal.name, *job.people])
    else:
        end, names = parse_iso(job.end), _unique(job.people)
    now = deps.now()
    if deps.cuts is None or not names or req.granted_at is None or req.expires_at is None:
        deps.store.settle(req.request_id, key, req.version)
        return []  # cut-offs were turned off after this job was owed, or it never was a grant
    # Defence in depth: whatever the record or the job says, a cut-off ends within the grant's
    # own life (from when it was made to its expiry, and, for a drift cut, not later than IAM
    # could still honour a copy taken back now): a forged end cannot deny sessions for longer.
    end = max(req.granted_at, min(end, req.expires_at, now + IAM_SETTLE if job.end else end))
    if cutoff.bound_of(end) + MAX_SESSION <= now:
        return _give_up(deps, req, job, key)
    try:
        merged = _write(deps, req, end, names)
    except CutBusy:
        # another writer holds the role: not a failure to report; the outbox retries it. The
        # card still shows the end now (this job brings it up to date, end_grant does not).
        if not job.end:
            run_all(deps, [jobs.Card(req.request_id)], on_error=lambda job, exc: None)
        raise
    except Exception as exc:
        _note_failure(deps, req, job, end, exc)
        raise
    return _done(deps, req, job, key, end, names, merged)


def _write(deps: Deps, req: Request, end: datetime, names: list[str]) -> cutoff.Merged:
    """Merge the cut-offs into the role's policy under the role's lease; what was merged."""
    token = secrets.token_hex(8)
    lease = lease_key(req.role_arn)
    for attempt in range(LEASE_TRIES):
        taken_at = deps.now()
        held = deps.store.take_lease(lease, token, taken_at, LEASE)
        if held is not None:
            break
        if attempt + 1 < LEASE_TRIES:
            deps.sleep(LEASE_WAIT)
    else:
        raise CutBusy(f"another job is writing the cut-offs of {req.role_arn}; retried")
    written = None
    try:
        role_id = deps.cuts.role_id(req.role_arn)
        wanted = [cutoff.CutOff(role_id, name, end, req.request_id) for name in names]
        # IAM's reads are eventually consistent: the policy read now may not show the last
        # version written. The lease keeps that document (the table reads consistently), so
        # its cut-offs are merged in too and a stale read cannot drop them.
        last, _ = cutoff.parse(held.get("document"))
        merged = cutoff.merge(deps.cuts.read(req.role_arn), wanted + [c for c in last if c.role_id == role_id],
                              deps.now())
        if merged.changed:
            if deps.now() > taken_at + LEASE - LEASE_MARGIN:
                raise CutBusy(f"too slow to write the cut-offs of {req.role_arn} within the lease; retried")
            deps.cuts.write(req.role_arn, merged.document)
            written = merged.document
            _check_in_force(deps, req.role_arn, wanted)
            # Still ours, and nobody wrote meanwhile? A holder whose IAM calls outlived its
            # lease may have overwritten a version another job wrote (and recorded) in
            # between: the lease's data changed then (or the lease is held by another). Retry:
            # the retry merges that job's document, kept in the lease, back in.
            if deps.store.take_lease(lease, token, deps.now(), LEASE) != held:
                written = None
                raise CutBusy(f"lost the lease on the cut-offs of {req.role_arn} while writing; retried so "
                              "that the other writer's cut-offs are merged back")
        return merged
    finally:
        try:
            deps.store.release_lease(lease, token, {"document": written} if written is not None else None)
        except Exception:  # noqa: BLE001 - the lease runs out by itself
            pass


def _check_in_force(deps: Deps, role_arn: str, wanted: list[cutoff.CutOff]) -> None:
    """Read the policy back until it enforces ``wanted`` (IAM takes a moment to show a new
    default version); CutNotInForce if it still does not after ``VERIFY_TRIES`` reads."""
    for attempt in range(VERIFY_TRIES):
        back = deps.cuts.read(role_arn)
        missing = [c.session_name for c in wanted if not cutoff.enforced(back, c)]
        if not missing:
            return
        if attempt + 1 < VERIFY_TRIES:
            deps.sleep(VERIFY_WAIT)
    raise CutNotInForce(f"the cut-off policy of {role_arn} read back does not deny {', '.join(missing)}; retried")


def _done(deps: Deps, req: Request, job: jobs.CutSessions, key: str, end: datetime, names: list[str],
          merged: cutoff.Merged) -> list[jobs.Job]:
    notable = []
    if merged.fallback:
        notable.append("over the policy's size budget: every session of the role issued before "
                       f"{iso_z(merged.role_wide[0].bound)} is denied (role-wide)")
    if merged.unreadable:
        notable.append(f"{len(merged.unreadable)} statement(s) Drawbridge did not write were dropped "
                       "from the cut-off policy")
    notice = jobs.Security("access_cut", {
        "request_id": req.request_id, "cut_at": iso_z(cutoff.bound_of(end)), "account": req.account,
        "role": req.role, "role_arn": req.role_arn, "iam_users": names,
        "role_wide": bool(merged.role_wide), "late": bool(job.end) or req.cut_attempts > 0,
        "notes": notable})
    tell = req.production or bool(notable) or bool(job.end) or req.cut_attempts > 0
    if job.end:  # a drift cut: the record does not change
        follow: list[jobs.Job] = [notice] if tell else []
        if follow:
            deps.store.owe(req.request_id, key_of(notice), jobs.to_wire(notice), deps.now(),
                           req.version, req.requester)
        deps.store.settle(req.request_id, key, 2**31)
        return follow
    now = deps.now()
    for _ in range(3):
        after, event = req.sessions_cut(now, "; ".join(notable) or None)
        follow = [jobs.Card(req.request_id)] + ([notice] if tell else [])
        try:
            deps.store.transition(req, after, event, owed(follow))
        except Conflict:
            req = deps.store.get(req.request_id)
            if req is None or req.sessions_cut_at is not None:
                return []
            continue
        deps.store.settle(req.request_id, key, after.version)
        return follow
    raise Conflict(f"{req.request_id} kept changing while its cut-off was recorded")


def _note_failure(deps: Deps, req: Request, job: jobs.CutSessions, end: datetime, exc: Exception) -> None:
    """The card and #security say that live sessions may outlast the grant (once each)."""
    note = f"{type(exc).__name__}: {exc}"[:300]
    live_until = iso_z(cutoff.bound_of(end) + MAX_SESSION)
    if job.end:  # a drift cut: no record to change; #security hears of it once (per copy taken back)
        notice = jobs.Security("access_cut_failed", {"request_id": req.request_id, "reason": note,
                                                     "live_until": live_until, "iam_users": _unique(job.people)})
        deps.store.owe(req.request_id, key_of(notice), jobs.to_wire(notice), deps.now(), req.version,
                       req.requester)
        run_all(deps, [notice], on_error=lambda job, exc: None)
        return
    told: list[jobs.Job] = [jobs.Card(req.request_id)]
    if req.cut_attempts == 0:
        told.append(jobs.Security("access_cut_failed", {"request_id": req.request_id, "reason": note,
                                                        "live_until": live_until}))
    after, event = req.cut_attempt_failed(deps.now(), note)
    try:
        deps.store.transition(req, after, event, owed(told))
    except Conflict:
        return
    run_all(deps, told, on_error=lambda job, exc: None)  # owed: the sweep retries what fails here


def _give_up(deps: Deps, req: Request, job: jobs.CutSessions, key: str) -> list[jobs.Job]:
    """Every session the cut-off was to end has expired: nothing left to cut."""
    if job.end:
        deps.store.settle(req.request_id, key, 2**31)
        return []
    after, event = req.cut_given_up(deps.now())
    follow: list[jobs.Job] = [jobs.Card(req.request_id)]
    if req.cut_attempts == 0:  # never tried (no worker or sweep ran it in time): say so once
        follow.append(jobs.Security("access_cut_failed", {
            "request_id": req.request_id, "live_until": iso_z(cutoff.bound_of(req.cut_before) + MAX_SESSION),
            "reason": "the cut-off was not written before every session it was to end had expired"}))
    try:
        deps.store.transition(req, after, event, owed(follow))
    except Conflict:
        return []  # changed meanwhile: the next try re-reads it
    deps.store.settle(req.request_id, key, after.version)
    return follow


def _key(job: jobs.CutSessions) -> str:
    return key_of(job) or "cut"


def _unique(names) -> list[str]:
    return list(dict.fromkeys(n for n in names if n))
