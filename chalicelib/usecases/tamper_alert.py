"""Use case: a call that blinds the alert path -> one loud alert in the security channel.

Reached through :func:`chalicelib.usecases.alert.handle` (the one alert path: same
handler, same pattern, envelope already checked, so the call was recorded in the bastion
or a catalog account about itself). A trail stopped, deleted, updated or given other
event selectors, or a Drawbridge forwarding rule deleted, disabled or stripped of its
targets, is posted once per CloudTrail ``eventID`` (the same claim and delivery record as
:mod:`~chalicelib.usecases.identity_alert`), ``<!here>`` always, failed calls included
(they say "attempted (failed: …)").
"""

from __future__ import annotations

from ..alerts import PathTamper
from ..domain.model import iso_z
from ..log import invocation_id
from ..slack import alert_views
from .delivery import DeliveryInFlight, deliver_once
from .deps import Deps

KIND = "alert_path_tampered"


def handle(deps: Deps, t: PathTamper, log=None) -> dict:
    """Returns the fields of an :class:`~chalicelib.usecases.alert.AlertOutcome`."""
    catalog, store = deps.catalog, deps.store
    account = catalog.account_by_id(t.account_id) if t.account_id else None
    account_key = account.key if account else ("bastion" if t.account_id == catalog.bastion_account_id else None)
    record = {
        "kind": KIND, "event_id": t.event_id, "event_name": t.event_name, "event_time": iso_z(t.event_time),
        "account": t.account_id, "region": t.region, "target": t.target, "actor": t.actor,
        "source_ip": t.source_ip, "user_agent": t.user_agent, "error_code": t.error_code,
    }
    if log is not None:
        log.warning("the alert path was tampered with", extra={k: record[k] for k in (
            "event_id", "event_name", "account", "region", "target", "actor", "error_code")})
    scope = f"ALERT#{t.event_id}"
    record["by"] = invocation_id()
    copy = not store.claim_alert(t.event_id, record, deps.now())
    if copy:
        done = store.delivery(scope, "security")
        if done is not None and done.ts:
            return {"kind": KIND, "duplicate": True}
        claimed = store.alert(t.event_id)
        copy = claimed is None or claimed.get("by") != record["by"]  # Lambda's retry of the claimer is no copy
    text, blocks = alert_views.tamper_blocks(t, account_key=account_key)
    meta = alert_views.tamper_metadata(t, account_key=account_key)
    try:
        deliver_once(deps, scope, "security", channel=catalog.security_channel, text=text, blocks=blocks,
                     event_type=meta["event_type"], payload=meta["event_payload"], match={"event_id": t.event_id})
    except DeliveryInFlight:
        if not copy:
            raise  # this invocation claimed it (or is Lambda's retry of the one that did)
        # The forwarding rule and the watchdog both deliver every tampering call, often at
        # the same moment: another invocation claimed it and is posting it now, and Lambda
        # retries that invocation should it fail, so this copy stops without an error. (When
        # the copy begins the post first, the claimer is the one told "in flight": it raises
        # and its retry finds the message.)
        return {"kind": KIND, "duplicate": True, "reason": "the other copy of this call is being posted"}
    return {"kind": KIND, "posted": True}
