"""Use case: a CloudTrail event of a way in -> the security channel (and the grant's card).

Sequence: check the envelope (only events an account Drawbridge knows recorded about
itself are believed) -> parse (pure) -> classify with the catalog -> one Query of the
caller's index partition (its grants by the CloudTrail ``eventTime``, never arrival time;
the grants whose first use was told; its open burst digests) -> one conditional put that
claims and records the call (one per ``sharedEventID`` / ``eventID``, and its use of the
grant) -> one Slack post. Two AWS calls and one Slack call per call, on the common path.

* The other copy of a call finds the claim taken (the claim names the copy that owns it)
  and stops there: the owner's invocation, its retries and its on-failure destination
  deliver it.
* A retry of the owner (same ``eventID``) looks for the alert in Slack before posting (the
  answer may have been lost), unless its first attempt may still be in flight.
* Slack's 429 (~1 message a second per channel) moves the call, and the principal's next
  ones, into a burst digest (:mod:`chalicelib.usecases.alert_digest`).
* A grant's first use is told once in its card's thread (:func:`_first_use`).

Failed attempts are grouped: the first of a caller on a target in a window posts the
quiet line, the later ones update it with the count (``_failed_attempt``). IAM changes to
a person's credentials go to the sibling use case :mod:`chalicelib.usecases.identity_alert`,
and calls that blind the alert path (trails stopped or narrowed, forwarding rules deleted or
disabled) to :mod:`chalicelib.usecases.tamper_alert`, through this same entry point. (The
path's own heartbeats have their rule and function, ``on_heartbeat``:
:mod:`chalicelib.usecases.liveness`.)

Nothing is lost silently: if posting fails the error is raised (the call's claim says so),
so the Lambda retry (or EventBridge redelivery) shows it once, and after the last retry the
invocation lands on the function's on-failure destination.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from ..alerts import (
    AlertKind,
    Assumption,
    covers,
    decide_alert,
    envelope_problem,
    failure_group_key,
    parse_assumption,
    parse_identity_change,
    parse_tamper,
    parse_utc,
)
from ..domain.decide import decide_grant
from ..domain.errors import RateLimited
from ..domain.lifecycle import GrantStatus
from ..domain.model import Principal, Request, iso_z
from ..domain.timing import grant_window_end
from ..slack import alert_views
from ..ports import AlertContext
from . import alert_digest, identity_alert, tamper_alert
from .deps import Deps

#: an earlier attempt of the same copy that started less than this ago may still be running
#: (the function's timeout is 30 s); Lambda's first retry of a failed one comes a minute later
CALL_IN_FLIGHT = timedelta(seconds=35)

#: a group's owner that has not saved its line after this long died posting it: another
#: attempt of the group takes over (the function's timeout is 30 s, Slack retries included)
GROUP_POST_TIMEOUT = timedelta(minutes=2)


@dataclass
class AlertOutcome:
    kind: str
    request_id: str | None = None
    posted: bool = False
    duplicate: bool = False
    updated: bool = False  # a failed attempt updated its group's line instead of posting
    reason: str | None = None  # why an event was ignored, or only counted
    grouped: bool = False  # shown in a burst digest instead of its own message
    digest: str | None = None


def covering_grant(deps: Deps, a: Assumption, grants=None) -> Request | None:
    """The approved grant whose usable window contains the event time, if any.

    ``grants``: the principal's grants ending at or after the event, as the alert path's
    one Query found them (read here when not given).

    A record only counts if the catalog *now* would have granted it (the same re-check the
    grant step makes, less the audit trail): a record written into the table by anything
    but Drawbridge cannot make an assumption look covered.
    """
    if not a.iam_user or a.failed or a.access != "role":
        return None
    if grants is None:
        grants = deps.store.grants_ending_after(Principal.iam_user(a.iam_user), a.event_time)
    for req in grants:
        end = grant_window_end(req)
        if (req.role_arn == a.role_arn and req.granted_at is not None and end is not None
                and req.grant_status is not GrantStatus.FAILED
                # CloudTrail's eventTime has whole seconds; our times have microseconds
                and covers(req.granted_at.replace(microsecond=0), end, a.event_time)
                and decide_grant(req, deps.role_of(req), deps.catalog.people.get(req.requester),
                                 max(deps.now(), req.decided_at or req.created_at)).allowed
                and _extension_recorded(deps, req)):
            return req
    return None


def _extension_recorded(deps: Deps, req: Request) -> bool:
    """An extended grant covers its later window only if the audit trail has the extension
    that moved its expiry there (one more read, for extended grants only): a record edited to
    claim extensions cannot stretch what looks covered."""
    if not req.extended_seconds:
        return True
    return any(e.action == "extended" and e.reason.endswith(f"-> {iso_z(req.expires_at)}")
               for e in deps.store.history(req.request_id))


def _refused(deps: Deps, event: dict, log) -> str | None:
    catalog = deps.catalog
    problem = envelope_problem(event, bastion_account_id=catalog.bastion_account_id,
                               catalog_account_ids=[acc.id for acc in catalog.accounts.values()])
    if problem is not None and log is not None:
        detail = event.get("detail") if isinstance(event, dict) else None
        log.warning("CloudTrail event refused: its envelope is not believed",
                    extra={"problem": problem, "event_id": str((detail or {}).get("eventID"))[:80]
                           if isinstance(detail, dict) else None})
    return problem


def handle(deps: Deps, event: dict, log=None, metric=None) -> AlertOutcome:
    catalog, store = deps.catalog, deps.store
    a = parse_assumption(event, bastion_account_id=catalog.bastion_account_id)
    change = parse_identity_change(event) if a is None else None
    tamper = parse_tamper(event) if a is None and change is None else None
    if a is None and change is None and tamper is None:
        return AlertOutcome(kind="ignored")
    problem = _refused(deps, event, log)
    if problem is not None:
        return AlertOutcome(kind="ignored", reason=problem)
    if change is not None:
        return AlertOutcome(**identity_alert.handle(deps, change, log=log))
    if tamper is not None:
        return AlertOutcome(**tamper_alert.handle(deps, tamper, log=log))

    account = catalog.account_by_id(a.account_id)
    role = catalog.role_by_arn(a.role_arn) if a.access == "role" else None
    # The one Query: the caller's grants, first uses told, open burst digests (none for a
    # failed call: it cannot be covered, and failed attempts are grouped their own way).
    ctx = (store.alert_context(alert_digest.principal_key(a), a.event_time) if not a.failed
           else AlertContext([], [], frozenset()))
    grant = covering_grant(deps, a, ctx.grants)
    kind = decide_alert(a, production=account.production if account else None,
                        has_grant=grant is not None, in_bastion=a.account_id == catalog.bastion_account_id)
    if kind is AlertKind.UNKNOWN_ACCOUNT and metric is not None and a.access == "role":
        metric("AssumptionInUnknownAccount")
    if not kind.posts_to_security_channel:
        if log is not None:
            log.info("role assumption without alert", extra={"kind": kind.value, "role_arn": a.role_arn,
                                                             "access": a.access, "event_id": a.event_id})
        return AlertOutcome(kind=kind.value)

    rid = grant.request_id if grant else None
    account_key = account.key if account else None
    role_key = role.key if role else None
    record = {
        "kind": kind.value, "event_id": a.event_id, "shared_event_id": a.shared_event_id,
        "event_name": a.event_name, "event_time": iso_z(a.event_time), "role_arn": a.role_arn,
        "account": account_key, "role": role_key, "iam_user": a.iam_user, "who": a.who,
        "source_ip": a.source_ip, "user_agent": a.user_agent, "mfa": a.mfa,
        "error_code": a.error_code, "request_id": rid, "copy": a.copy,
    }
    if a.access != "role":
        record["access"] = a.access
    view = _View(a, kind, account_key, role.label if role else None, role_key, rid,
                 break_glass=grant is not None and grant.break_glass)
    if kind is AlertKind.FAILED_ATTEMPT:
        return _failed_attempt(deps, view, record)
    return _way_in(deps, view, record, grant, ctx, log)


def _way_in(deps: Deps, view: "_View", record: dict, grant: Request | None, ctx: AlertContext,
            log=None) -> AlertOutcome:
    """A covered or uncovered way in: claimed and recorded in one conditional write, then
    its own alert (one Slack post) or, in a burst, its digest (alert_digest.py)."""
    store, a, now = deps.store, view.a, deps.now()
    kind, rid = view.kind.value, view.request_id
    key = a.dedupe_key
    loud = view.kind is AlertKind.UNCOVERED or view.break_glass  # a break-glass grant is never quiet
    opened = alert_digest.open_digest(ctx, loud, now)
    use = (rid, f"{iso_z(a.event_time)}#{a.event_id}") if rid else None
    claim = store.claim_call(key, a.event_id, record, now, token=uuid.uuid4().hex,
                             digest=opened["key"] if opened else None, use=use)
    if claim.state == "taken":  # the other copy of this call claimed it and delivers it
        return AlertOutcome(kind=kind, request_id=rid, duplicate=True)
    digest = opened["key"] if claim.state == "first" and opened else claim.digest
    grant_view = None
    if grant is not None:
        grant_view = {"request_id": grant.request_id, "reason": grant.reason,
                      "approvers": list(grant.approvers), "requester": grant.requester,
                      "granted_at": iso_z(grant.granted_at), "expires_at": iso_z(grant.expires_at)}
        if grant.break_glass:
            grant_view.update(break_glass=True, review=review_state(grant))
    text, blocks, meta = view._render(grant_view)
    payload, channel = meta["event_payload"], deps.catalog.security_channel
    again = claim.state == "again"
    if again and digest is None:
        # An earlier attempt of this same copy (Lambda's retry, EventBridge's redelivery):
        # still at it, or it may have posted and lost Slack's answer - look before posting.
        if claim.attempt_at is not None and now - claim.attempt_at < CALL_IN_FLIGHT:
            return AlertOutcome(kind=kind, request_id=rid, duplicate=True)
        match = ({"shared_event_id": a.shared_event_id} if a.shared_event_id and "shared_event_id" in payload
                 else {"event_id": a.event_id})
        if deps.slack.find(channel, meta["event_type"], match) is not None:
            return AlertOutcome(kind=kind, request_id=rid, duplicate=True)
    if digest is None:
        try:
            deps.slack.try_post(channel, text, blocks, meta["event_type"], payload)
        except RateLimited as limited:
            # Beyond Slack's pace: this call, and the principal's next ones this minute, go
            # into a digest; recorded before it joins, so no retry also posts it alone.
            digest = alert_digest.new_key(alert_digest.principal_key(a), loud, now)
            if not store.put_call_in_digest(key, a.event_id, digest):
                digest = (store.call(key) or {}).get("digest") or digest
            return _in_digest(deps, view, grant, ctx, digest, log,
                              not_before=alert_digest.ceil_second(now + timedelta(seconds=limited.retry_after)),
                              again=again)
        except Exception:
            # Not shown, or shown with the answer lost: Lambda retries this copy, which looks
            # for it before posting (and after the last retry, the on-failure destination).
            store.call_failed(key, a.event_id)
            raise
        _first_use(deps, a, grant, ctx, log)
        return AlertOutcome(kind=kind, request_id=rid, posted=True)
    return _in_digest(deps, view, grant, ctx, digest, log, again=again)


def _in_digest(deps: Deps, view: "_View", grant, ctx: AlertContext, key: str, log, *,
               not_before=None, again: bool = False) -> AlertOutcome:
    a = view.a
    j = alert_digest.join_of(deps, a, view.kind, key, account_key=view.account_key, role_label=view.role_label,
                             grant=grant, not_before=not_before)
    d = alert_digest.join(deps, a.event_id, j)
    alert_digest.flush(deps, d["key"], d, log=log)
    _first_use(deps, a, grant, ctx, log)
    return AlertOutcome(kind=view.kind.value, request_id=view.request_id, grouped=True, digest=d["key"],
                        duplicate=again)


def _first_use(deps: Deps, a: Assumption, grant: Request | None, ctx: AlertContext, log=None) -> None:
    """The first use of a grant is told on its card, in the card's thread, once (every use
    is in the security channel). One attempt: a failure here is logged, never retried."""
    if grant is None or grant.request_id in ctx.used:
        return
    store = deps.store
    try:
        if not store.first_use(grant.request_id, alert_digest.principal_key(a), grant_window_end(grant), deps.now()):
            return
        ref = store.card(grant.request_id)
        if ref is None:
            return
        used = alert_views.grant_used_metadata(a, request_id=grant.request_id)
        deps.slack.post(ref[0], f"first {alert_views.usage_reply_text(a)} (every use is alerted in the security channel)",
                        None, used["event_type"], used["event_payload"], thread_ts=ref[1])
    except Exception:  # noqa: BLE001 - the alert is shown; the card's note is best effort
        if log is not None:
            log.warning("first-use reply on the card not posted", exc_info=True,
                        extra={"request_id": grant.request_id})


@dataclass
class _View:
    """One alert's rendering inputs: posts it, or updates the group's line."""

    a: Assumption
    kind: AlertKind
    account_key: str | None
    role_label: str | None
    role_key: str | None
    request_id: str | None
    break_glass: bool = False  # the covering grant is a break-glass grant: loud, and said so

    def _render(self, grant=None, attempts=None):
        text, blocks = alert_views.alert_blocks(self.a, self.kind, account_key=self.account_key,
                                                role_label=self.role_label, grant=grant, attempts=attempts)
        meta = alert_views.alert_metadata(self.a, self.kind, account_key=self.account_key, role_key=self.role_key,
                                          request_id=self.request_id, attempts=attempts)
        if self.break_glass:
            meta["event_payload"]["break_glass"] = True
        return text, blocks, meta

    def post(self, deps: Deps, grant=None, attempts=None) -> tuple[str, str]:
        text, blocks, meta = self._render(grant, attempts)
        return deps.slack.post(deps.catalog.security_channel, text, blocks, meta["event_type"],
                               meta["event_payload"])

    def update(self, deps: Deps, channel: str, ts: str, attempts) -> None:
        text, blocks, meta = self._render(None, attempts)
        deps.slack.update(channel, ts, text, blocks, meta["event_type"], meta["event_payload"])


def _attempts(group: dict) -> dict:
    return {"count": group["count"], "first": parse_utc(group["first"]), "last": parse_utc(group["last"])}


def _failed_attempt(deps: Deps, view: _View, record: dict) -> AlertOutcome:
    """One line per caller, target and window (``chalicelib.alerts.failure_group_key``).

    The attempt is claimed first (a redelivery stops there: it never counts twice), then
    counted in its group. The group's first attempt owns the line: it posts it, saves
    where it is (only the owner may, once), and re-reads the group to show attempts that
    were counted while it posted. Later attempts update the line in place. An attempt
    that finds the owner still posting is counted and leaves the line to the owner
    (unless the owner has been at it for longer than :data:`GROUP_POST_TIMEOUT`: then it
    died, and this attempt takes over). On any failure the count and the claim are
    undone and the error raised, so the retry counts and shows the attempt once.
    """
    store, a, now = deps.store, view.a, deps.now()
    kind, me = view.kind.value, a.dedupe_key
    key = record["group"] = failure_group_key(a)
    if not store.claim_alert(me, record, now):
        return AlertOutcome(kind=kind, duplicate=True)
    try:
        group = store.join_alert_group(key, me, a.event_time, now)
    except Exception:
        store.release_alert(me)
        raise
    try:
        if group["ts"] is None and group["owner"] != me:
            owned_at = parse_utc(group["owned_at"])
            stale = owned_at is None or now - owned_at > GROUP_POST_TIMEOUT
            if not (stale and store.take_alert_group(key, group["owner"], me, now)):
                return AlertOutcome(kind=kind, reason="counted; the group's first attempt is posting its line")
            group["owner"] = me
        if group["ts"] is None:
            channel, ts = view.post(deps, attempts=_attempts(group))
            store.save_alert_group_message(key, me, channel, ts)
            latest = store.alert_group(key)
            if latest is not None and _attempts(latest) != _attempts(group):
                view.update(deps, channel, ts, _attempts(latest))  # counted while we posted
            return AlertOutcome(kind=kind, posted=True)
        view.update(deps, group["channel"], group["ts"], _attempts(group))
        return AlertOutcome(kind=kind, updated=True)
    except Exception:
        store.leave_alert_group(key, me)
        store.release_alert(me)  # the retry counts it again and shows it
        raise


def review_state(grant: Request) -> str:
    """Where a break-glass grant's review stands, in words (raw: escaped when shown)."""
    if grant.review_outcome == "acknowledged":
        return f"acknowledged by @{grant.reviewed_by}"
    if grant.review_outcome == "flagged":
        return f"FLAGGED by @{grant.reviewed_by}: {grant.review_note or ''}"
    return "pending" + (" (overdue, #security told)" if grant.review_escalated_at else "")
