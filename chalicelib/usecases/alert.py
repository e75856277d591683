"""Use case: a CloudTrail AssumeRole* event -> the security channel (and the grant's card).

Sequence: parse (pure) -> classify with the catalog -> find the covering grant in the
table (by the caller's IAM user and the CloudTrail ``eventTime``, never arrival time)
-> claim the call durably (one alert per ``sharedEventID`` / ``eventID``) -> post.
If posting fails the claim is released and the error raised, so the Lambda retry
(or EventBridge redelivery) posts it once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..alerts import AlertKind, Assumption, covers, decide_alert, parse_assumption
from ..domain.lifecycle import GrantStatus
from ..domain.model import Principal, Request, iso_z
from ..domain.timing import grant_window_end
from ..slack import alert_views
from .deps import Deps


@dataclass
class AlertOutcome:
    kind: str
    request_id: str | None = None
    posted: bool = False
    duplicate: bool = False


def covering_grant(store, a: Assumption) -> Request | None:
    """The approved grant whose usable window contains the event time, if any."""
    if not a.iam_user or a.failed:
        return None
    for req in store.grants_ending_after(Principal.iam_user(a.iam_user), a.event_time):
        end = grant_window_end(req)
        if (req.role_arn == a.role_arn and req.granted_at is not None and end is not None
                and req.grant_status is not GrantStatus.FAILED
                # CloudTrail's eventTime has whole seconds; our times have microseconds
                and covers(req.granted_at.replace(microsecond=0), end, a.event_time)):
            return req
    return None


def handle(deps: Deps, event: dict, log=None, metric=None) -> AlertOutcome:
    catalog, store = deps.catalog, deps.store
    a = parse_assumption(event, bastion_account_id=catalog.bastion_account_id)
    if a is None:
        return AlertOutcome(kind="ignored")
    account = catalog.account_by_id(a.account_id)
    role = catalog.role_by_arn(a.role_arn)
    grant = covering_grant(store, a)
    kind = decide_alert(a, production=account.production if account else None,
                        has_grant=grant is not None)
    if kind is AlertKind.UNKNOWN_ACCOUNT and metric is not None:
        metric("AssumptionInUnknownAccount")
    if not kind.posts_to_security_channel:
        if log is not None:
            log.info("role assumption without alert", extra={"kind": kind.value, "role_arn": a.role_arn,
                                                             "event_id": a.event_id})
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
    if not store.claim_alert(a.dedupe_key, record, deps.now()):
        return AlertOutcome(kind=kind.value, request_id=rid, duplicate=True)
    try:
        grant_view = None
        if grant is not None:
            grant_view = {"request_id": grant.request_id, "reason": grant.reason,
                          "approvers": list(grant.approvers), "requester": grant.requester,
                          "granted_at": iso_z(grant.granted_at), "expires_at": iso_z(grant.expires_at)}
        text, blocks = alert_views.alert_blocks(a, kind, account_key=account_key,
                                                role_label=role.label if role else None, grant=grant_view)
        meta = alert_views.role_assumed_metadata(a, kind, account_key=account_key, role_key=role_key,
                                                 request_id=rid)
        deps.slack.post(catalog.security_channel, text, blocks, meta["event_type"], meta["event_payload"])
    except Exception:
        store.release_alert(a.dedupe_key)  # let the retry post it
        raise
    if grant is not None:
        store.record_use(grant.request_id, a.event_time, a.event_id, record)
        ref = store.card(grant.request_id)
        if ref is not None:
            # Its own event type: a bot counting `role_assumed` must see each call once.
            reply = alert_views.usage_reply_text(a)
            used = alert_views.grant_used_metadata(a, request_id=grant.request_id)
            deps.slack.post(ref[0], reply, None, used["event_type"], used["event_payload"], thread_ts=ref[1])
    return AlertOutcome(kind=kind.value, request_id=rid, posted=True)
