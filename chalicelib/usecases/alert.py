"""Use case: a CloudTrail event of a way in -> the security channel (and the grant's card).

Sequence: check the envelope (only events an account Drawbridge knows recorded about
itself are believed) -> parse (pure) -> classify with the catalog -> find the covering
grant in the table (by the caller's IAM user and the CloudTrail ``eventTime``, never
arrival time) -> claim the call durably (one alert per ``sharedEventID`` / ``eventID``)
-> post. Failed attempts are grouped: the first of a caller on a target in a window
posts the quiet line, the later ones update it with the count (``_failed_attempt``).
IAM changes to a person's credentials go to the sibling use case
:mod:`chalicelib.usecases.identity_alert`, through this same entry point.

Nothing is lost silently: if posting (or updating) fails, the claim (and the count) is
released and the error raised, so the Lambda retry (or EventBridge redelivery) posts it
once, and after the last retry the invocation lands on the function's on-failure
destination.
"""

from __future__ import annotations

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
    parse_utc,
)
from ..domain.decide import decide_grant
from ..domain.lifecycle import GrantStatus
from ..domain.model import Principal, Request, iso_z
from ..domain.timing import grant_window_end
from ..slack import alert_views
from . import identity_alert
from .delivery import DeliveryInFlight, deliver_once
from .deps import Deps

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


def covering_grant(deps: Deps, a: Assumption) -> Request | None:
    """The approved grant whose usable window contains the event time, if any.

    A record only counts if the catalog *now* would have granted it (the same re-check the
    grant step makes, less the audit trail): a record written into the table by anything
    but Drawbridge cannot make an assumption look covered.
    """
    if not a.iam_user or a.failed or a.access != "role":
        return None
    for req in deps.store.grants_ending_after(Principal.iam_user(a.iam_user), a.event_time):
        end = grant_window_end(req)
        if (req.role_arn == a.role_arn and req.granted_at is not None and end is not None
                and req.grant_status is not GrantStatus.FAILED
                # CloudTrail's eventTime has whole seconds; our times have microseconds
                and covers(req.granted_at.replace(microsecond=0), end, a.event_time)
                and decide_grant(req, deps.role_of(req), deps.catalog.people.get(req.requester),
                                 max(deps.now(), req.decided_at or req.created_at)).allowed):
            return req
    return None


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
    if a is None and change is None:
        return AlertOutcome(kind="ignored")
    problem = _refused(deps, event, log)
    if problem is not None:
        return AlertOutcome(kind="ignored", reason=problem)
    if change is not None:
        return AlertOutcome(**identity_alert.handle(deps, change, log=log))

    account = catalog.account_by_id(a.account_id)
    role = catalog.role_by_arn(a.role_arn) if a.access == "role" else None
    grant = covering_grant(deps, a)
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
    view = _View(a, kind, account_key, role.label if role else None, role_key, rid)
    if kind is AlertKind.FAILED_ATTEMPT:
        return _failed_attempt(deps, view, record)

    scope = f"ALERT#{a.dedupe_key}"
    first = store.claim_alert(a.dedupe_key, record, deps.now())
    if not first:
        done = store.delivery(scope, "security")
        # Done only when the use is recorded and threaded too: an invocation that posted the
        # alert and then failed leaves those to its retry (both are safe to repeat).
        used = store.delivery(scope, "grant_used") if grant is not None else None
        replied = grant is None or used is not None or store.card(grant.request_id) is None
        if done is not None and done.ts and replied:
            return AlertOutcome(kind=kind.value, request_id=rid, duplicate=True)
        # Claimed, but not known to be posted (an earlier invocation failed, or its answer
        # was lost): this retry delivers it - once, looking for it first.
    grant_view = None
    if grant is not None:
        grant_view = {"request_id": grant.request_id, "reason": grant.reason,
                      "approvers": list(grant.approvers), "requester": grant.requester,
                      "granted_at": iso_z(grant.granted_at), "expires_at": iso_z(grant.expires_at)}
    text, blocks, meta = view._render(grant_view)
    payload = meta["event_payload"]
    match = ({"shared_event_id": a.shared_event_id} if a.shared_event_id and "shared_event_id" in payload
             else {"event_id": a.event_id})
    try:
        posted = deliver_once(deps, scope, "security", channel=deps.catalog.security_channel, text=text,
                              blocks=blocks, event_type=meta["event_type"], payload=payload, match=match)
    except DeliveryInFlight:
        if first:
            raise
        # The other copy of this call (or a redelivery) is posting it right now; if it
        # fails, Lambda retries *that* invocation, which delivers it.
        return AlertOutcome(kind=kind.value, request_id=rid, duplicate=True)
    duplicate = not first and not posted.fresh  # found: an earlier invocation posted it
    if grant is not None:
        store.record_use(grant.request_id, a.event_time, a.event_id, record)
        ref = store.card(grant.request_id)
        if ref is not None:
            # Its own event type: a bot counting `role_assumed` must see each call once.
            reply = alert_views.usage_reply_text(a)
            used = alert_views.grant_used_metadata(a, request_id=grant.request_id)
            deliver_once(deps, scope, "grant_used", channel=ref[0], text=reply, blocks=None,
                         event_type=used["event_type"], payload=used["event_payload"],
                         match={"event_id": a.event_id}, thread_ts=ref[1])
    return AlertOutcome(kind=kind.value, request_id=rid, posted=not duplicate, duplicate=duplicate)


@dataclass
class _View:
    """One alert's rendering inputs: posts it, or updates the group's line."""

    a: Assumption
    kind: AlertKind
    account_key: str | None
    role_label: str | None
    role_key: str | None
    request_id: str | None

    def _render(self, grant=None, attempts=None):
        text, blocks = alert_views.alert_blocks(self.a, self.kind, account_key=self.account_key,
                                                role_label=self.role_label, grant=grant, attempts=attempts)
        meta = alert_views.alert_metadata(self.a, self.kind, account_key=self.account_key, role_key=self.role_key,
                                          request_id=self.request_id, attempts=attempts)
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
