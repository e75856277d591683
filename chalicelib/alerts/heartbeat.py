"""The alert path's heartbeat: an event -> :class:`Heartbeat`, and when a path counts as
silent. PURE: stdlib only (plus the stdlib-only constants of ``chalicelib.event_pattern``).

A heartbeat is a custom event (``drawbridge.heartbeat``) that a schedule in a member
account (or one of the bastion's other Regions) puts on its own default bus; the
forwarding rule carries it to the bastion like any CloudTrail event. What is believed:
the envelope's ``account`` and ``region``, which EventBridge sets (a sender can write
``detail`` and ``time``, never these). Its ``time`` is not used: the bastion counts a
heartbeat when it *arrives*, since what is proven is that the path delivers now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from chalicelib.alerts.cloudtrail import _account, _str
from chalicelib.event_pattern import HEARTBEAT_DETAIL_TYPE, HEARTBEAT_INTERVAL_MINUTES, HEARTBEAT_SOURCE

HEARTBEAT_INTERVAL = timedelta(minutes=HEARTBEAT_INTERVAL_MINUTES)
#: a path whose last heartbeat is older than two intervals is silent (one lost or late
#: heartbeat is not an alert; two in a row are)
SILENT_AFTER = 2 * HEARTBEAT_INTERVAL

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


@dataclass(frozen=True)
class Heartbeat:
    account_id: str
    region: str


def is_heartbeat(event: Any) -> bool:
    return (isinstance(event, Mapping) and event.get("source") == HEARTBEAT_SOURCE
            and event.get("detail-type") == HEARTBEAT_DETAIL_TYPE)


def parse_heartbeat(event: Any, *, bastion_account_id: str,
                    catalog_account_ids: Iterable[str]) -> tuple[Heartbeat | None, str | None]:
    """(the heartbeat, None), or (None, why it is not believed). Only call it for
    :func:`is_heartbeat` events."""
    account = _account(_str(event, "account"))
    region = _str(event, "region")
    if account is None:
        return None, "no 12-digit envelope account"
    if region is None or not _REGION.match(region):
        return None, "no Region in the envelope"
    if account != bastion_account_id and account not in set(catalog_account_ids):
        return None, f"account {account} is neither the bastion nor a catalog account"
    return Heartbeat(account, region), None


def silent(last_seen: datetime, now: datetime) -> bool:
    """Has the path whose last heartbeat arrived at ``last_seen`` gone silent by ``now``?"""
    return now - last_seen > SILENT_AFTER
