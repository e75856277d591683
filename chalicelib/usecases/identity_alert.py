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
    if not store.claim_alert(change.event_id, record, deps.now()):
        return {"kind": KIND, "duplicate": True}
    try:
        text, blocks = alert_views.identity_change_blocks(change, person=person.key, loud=loud)
        meta = alert_views.identity_changed_metadata(change, person=person.key, loud=loud)
        deps.slack.post(catalog.security_channel, text, blocks, meta["event_type"], meta["event_payload"])
    except Exception:
        store.release_alert(change.event_id)  # let the retry post it
        raise
    return {"kind": KIND, "posted": True}
