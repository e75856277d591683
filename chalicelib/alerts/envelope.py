"""Whether an EventBridge event may be believed at all (:func:`envelope_problem`).
PURE: stdlib only.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from chalicelib.alerts.cloudtrail import _account, _dict, _str


def envelope_problem(event: Any, *, bastion_account_id: str, catalog_account_ids: Iterable[str]) -> str | None:
    """Why this event must not be believed, or None.

    EventBridge sets the envelope's ``account`` (the account whose bus or rule produced
    it); a member account that puts an event on the bastion bus cannot forge it, only
    ``detail``. So a CloudTrail event is accepted only when ``account`` equals
    ``detail.recipientAccountId`` (the account CloudTrail recorded it in) and is the
    bastion or an account of the catalog. A forged event can then speak only of its
    own account, never of the bastion's people or another account's roles.
    """
    if not isinstance(event, Mapping):
        return "not an EventBridge event"
    account = _account(_str(event, "account"))
    if account is None:
        return "no 12-digit envelope account"
    recipient = _str(_dict(event, "detail"), "recipientAccountId")
    if recipient != account:
        return f"envelope account {account} is not detail.recipientAccountId {str(recipient)[:20]!r}"
    if account != bastion_account_id and account not in set(catalog_account_ids):
        return f"account {account} is neither the bastion nor a catalog account"
    return None
