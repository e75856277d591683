"""Use case: what was done with a grant (issue 18; docs/decisions/0010-grant-activity.md).

* :func:`handle` (``on_activity``): a forwarded CloudTrail write call of a role session ->
  check the envelope (only an account's own record is believed) -> parse (pure) -> keep
  only sessions of the catalog's JIT roles -> the covering grant, found exactly as the alert
  path finds it (the person's grants by ``eventTime``, re-checked with ``decide_grant``) ->
  one transaction: the call's dedupe claim and the grant's tally -> a notable call is told
  in the card's thread, at most once per ``eventID``.
* :func:`post_digest` (the ``ActivityDigest`` job, owed when a grant ends): the tally as
  one ``grant_activity`` reply in the card's thread, once the late CloudTrail deliveries
  have had :data:`SETTLE` to arrive.
* :func:`summary`: the same digest, so far, for ``/aws-access activity <request-id>``.

A call by a JIT role session that no grant covers is not counted anywhere: it is logged
as a warning and counted in the ``ActivityUnderNoGrant`` metric (the way in behind it was
already alerted in the security channel by the alert path, as "no approved grant").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import activity as act
from ..alerts import envelope_problem
from ..domain.errors import DomainError
from ..domain.model import iso_z
from ..slack.escape import escape_mrkdwn
from . import jobs
from .deps import Deps

#: the end-of-grant digest waits this long after the grant's end: CloudTrail delivers a
#: call to EventBridge typically within 5 minutes, and rarely later than 15
SETTLE = timedelta(minutes=15)
#: the outbox key of a grant's digest
DIGEST_KEY = "activity"


@dataclass
class ActivityOutcome:
    kind: str  # "counted", "duplicate", "no_grant" or "ignored"
    request_id: str | None = None
    notable: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Session:
    """What :func:`~chalicelib.usecases.alert.covering_grant` reads of a use of a role."""

    iam_user: str
    role_arn: str
    event_time: datetime
    failed: bool = False  # a denied write is still made with the grant's session
    access: str = "role"


def handle(deps: Deps, event: dict, log=None, metric=None) -> ActivityOutcome:
    from .alert import covering_grant

    call = act.parse_call(event)
    if call is None:
        return ActivityOutcome("ignored", reason="not a write call of a role session")
    catalog = deps.catalog
    problem = envelope_problem(event, bastion_account_id=catalog.bastion_account_id,
                               catalog_account_ids=[a.id for a in catalog.accounts.values()])
    if problem is None and call.account_id != event.get("account"):
        problem = f"role account {call.account_id} is not the envelope account"
    if problem is not None:
        if log is not None:
            log.warning("activity event refused: its envelope is not believed",
                        extra={"problem": problem, "event_id": call.event_id[:80]})
        return ActivityOutcome("ignored", reason=problem)
    if catalog.role_by_arn(call.role_arn) is None:
        return ActivityOutcome("ignored", reason="not a JIT role of the catalog")
    grant = covering_grant(deps, _Session(call.session_name, call.role_arn, call.event_time))
    if grant is None:
        if log is not None:
            log.warning("activity under no grant", extra={
                "event_id": call.event_id[:80], "role_arn": call.role_arn, "session": call.session_name,
                "action": call.key, "event_time": iso_z(call.event_time)})
        if metric is not None:
            metric("ActivityUnderNoGrant")
        return ActivityOutcome("no_grant", reason="no grant covers this session at this time")
    rid = grant.request_id
    first, tally = deps.store.record_activity(rid, call.event_id, lambda old: act.add(old, call), deps.now())
    if call.notable:
        if tally is None:  # a repeat: was it one of the notable calls the thread tells?
            tally = deps.store.activity(rid) or {}
            told = any(n.get("event_id") == call.event_id for n in tally.get("notable", []))
        else:
            told = tally.get("notable_count", 0) <= act.MAX_NOTABLE
        if told:  # the first MAX_NOTABLE of a grant; the digest counts the rest (no flood)
            # also on a repeat: the first invocation may have died between the count and the
            # post (deliver_once posts a thread reply at most once)
            _tell_notable(deps, rid, call, log)
    return ActivityOutcome("counted" if first else "duplicate", request_id=rid, notable=call.notable)


def notable_payload(rid: str, call: act.Call) -> dict:
    return {"request_id": rid, "event_id": call.event_id, "event_name": call.action, "service": call.service,
            "summary": call.notable, "event_time": iso_z(call.event_time), "failed": call.failed}


def notable_text(call: act.Call) -> str:
    failed = f" — *failed* ({escape_mrkdwn(call.error_code)})" if call.error_code else ""
    return (f":mag: notable: {escape_mrkdwn(call.notable or '')} — `{escape_mrkdwn(call.key)}` at "
            f"{call.event_time:%H:%M:%S} UTC by {escape_mrkdwn(call.session_name)}{failed}")


def _tell_notable(deps: Deps, rid: str, call: act.Call, log=None) -> None:
    from .delivery import deliver_once

    try:
        ref = deps.store.card(rid)
        if ref is None:
            return
        deliver_once(deps, rid, f"notable:{call.event_id}", channel=ref[0], text=notable_text(call), blocks=None,
                     event_type="grant_notable", payload=notable_payload(rid, call),
                     match={"request_id": rid, "event_id": call.event_id}, thread_ts=ref[1])
    except Exception:  # noqa: BLE001 - counted (the tally and the digest list it); the reply is best effort
        if log is not None:
            log.warning("notable-action reply on the card not posted", exc_info=True,
                        extra={"request_id": rid, "event_id": call.event_id[:80]})


def summary(deps: Deps, rid: str, *, final: bool) -> tuple[str, dict]:
    """(text, ``grant_activity`` payload) of the grant's tally as it is now."""
    payload = act.digest_payload(rid, deps.store.activity(rid), final=final)
    return escape_mrkdwn(act.digest_text(payload)), payload


#: the version the digest is owed at: above any record version, so that a change of the
#: record (which settles what it owed at its own version) never drops it
DIGEST_VERSION = 2**31 - 1


class DigestNotDue(DomainError):
    """The grant has not been over for :data:`SETTLE` yet; the outbox keeps the digest."""


def owe_digest(deps: Deps, rid: str, ended_at: datetime) -> None:
    """Owe the grant's digest for its end + :data:`SETTLE` (the sweep delivers it). Written
    by the end of a grant just before its transition: a lost transition leaves a digest owed
    for a grant that has not ended, which :func:`post_digest` drops (the real end owes it
    again). Not a message the requester is waiting for: owed without their index key, so
    ``list`` does not show it as undelivered."""
    deps.store.owe(rid, DIGEST_KEY, jobs.to_wire(jobs.ActivityDigest(rid)), ended_at + SETTLE,
                   version=DIGEST_VERSION)


def post_digest(deps: Deps, job: jobs.ActivityDigest) -> list[jobs.Job]:
    """The end-of-grant digest in the card's thread, once (``deliver_once``), from the
    tally as it is at the grant's end + :data:`SETTLE`."""
    from .delivery import deliver_once

    store, rid = deps.store, job.request_id
    req = store.get(rid)
    if req is None or req.granted_at is None or req.ended_at is None:
        store.settle(rid, DIGEST_KEY, 2**31)  # never granted, or not ended: owed again at its end
        return []
    if deps.now() < req.ended_at + SETTLE:
        # (the sweep runs it only once due; a run before that is kept owed, retried later)
        raise DigestNotDue(f"the activity digest of {rid} is due at {iso_z(req.ended_at + SETTLE)}")
    ref = store.card(rid)
    if ref is not None:
        text, payload = summary(deps, rid, final=True)
        deliver_once(deps, rid, "grant_activity", channel=ref[0], text=text, blocks=None,
                     event_type="grant_activity", payload=payload, match={"request_id": rid}, thread_ts=ref[1])
    store.settle(rid, DIGEST_KEY, 2**31)
    return []


def show(deps: Deps, person, rid: str):
    """``/aws-access activity <request-id>``: the digest so far (or in all, once the grant
    has ended), for the requester, the role's approvers as the catalog says now (user
    groups resolved) and the members of the security channel (asked of Slack only for
    anybody else). Anybody else is refused."""
    from .outcomes import ActivityReport, Answer, Refused, UnknownRequest

    req = deps.store.get(rid)
    if req is None:
        return Answer(UnknownRequest(rid))
    role = deps.role_of(req)
    if not (person.key == req.requester or (role is not None and person.key in role.approvers)
            or _in_security_channel(deps, person)):
        return Answer(Refused(f"Only the requester, the approvers of `{req.label}` and the security channel's "
                              f"members may see what was done with `{rid}`."))
    if req.granted_at is None:
        return Answer(ActivityReport(rid, req.label, "never granted: nothing could be done with it."))
    text, _ = summary(deps, rid, final=req.ended_at is not None)
    return Answer(ActivityReport(rid, req.label, text))


def _in_security_channel(deps: Deps, person) -> bool:
    """Whether ``person`` is in the security channel now (``conversations.members``, kept a
    minute); not when Slack cannot say (fail closed) or groups are not wired."""
    if deps.groups is None:
        return False
    members = deps.groups.channel_members(deps.catalog.security_channel)
    return members is not None and person.slack_user in members
