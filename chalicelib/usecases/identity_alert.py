"""Use case: an IAM change to a Drawbridge person's credentials -> the security channel.

Reached through :func:`chalicelib.usecases.alert.handle` (the one alert path: same
handler, same pattern, envelope already checked). An MFA device enabled, deactivated or
deleted, an access key created, or a console password created or changed on the bastion
IAM user of a catalog person is posted once per ``eventID`` (the same claim as every
alert): loud when someone other than the person did it or the caller's session had no
MFA (:func:`chalicelib.alerts.identity_change_loud`), a quiet line otherwise and for
calls that failed. Changes in other accounts, or to IAM users that are nobody in the
catalog, are logged and dropped: the bastion's people are what Drawbridge vouches for.
"""

from __future__ import annotations

from ..alerts import IdentityChange, identity_change_loud
from ..domain.model import iso_z
from ..slack import alert_views
from .delivery import deliver_once
from .deps import Deps

KIND = "identity_changed"


def handle(deps: Deps, change: IdentityChange, log=None) -> dict:
    """Returns the fields of an :class:`~chalicelib.usecases.alert.AlertOutcome`."""
    catalog, store = deps.catalog, deps.store
    person = catalog.person_by_iam_user(change.iam_user) if change.iam_user else None
    if change.account_id != catalog.bastion_account_id or person is None:
        if log is not None:
            log.info("IAM change without alert", extra={
                "event_name": change.event_name, "event_id": change.event_id,
                "reason": "not in the bastion account" if change.account_id != catalog.bastion_account_id
                else "not a catalog person's IAM user"})
        return {"kind": "ignored", "reason": "not a change to a catalog person in the bastion"}

    loud = identity_change_loud(change)
    record = {
        "kind": KIND, "event_id": change.event_id, "event_name": change.event_name,
        "event_time": iso_z(change.event_time), "account": change.account_id, "person": person.key,
        "iam_user": change.iam_user, "subject": change.subject, "actor": change.actor,
        "by_self": change.by_self, "mfa": change.mfa, "source_ip": change.source_ip,
        "user_agent": change.user_agent, "error_code": change.error_code, "loud": loud,
    }
    scope = f"ALERT#{change.event_id}"
    if not store.claim_alert(change.event_id, record, deps.now()):
        done = store.delivery(scope, "security")
        if done is not None and done.ts:
            return {"kind": KIND, "duplicate": True}
    text, blocks = alert_views.identity_change_blocks(change, person=person.key, loud=loud)
    meta = alert_views.identity_changed_metadata(change, person=person.key, loud=loud)
    deliver_once(deps, scope, "security", channel=catalog.security_channel, text=text, blocks=blocks,
                 event_type=meta["event_type"], payload=meta["event_payload"], match={"event_id": change.event_id})
    return {"kind": KIND, "posted": True}
