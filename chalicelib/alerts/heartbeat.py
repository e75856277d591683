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
#: what a heartbeat may take from its schedule to the bastion's table: Scheduler's own
#: delivery (seconds late at most with FlexibleTimeWindow OFF), the forwarding rule, the
#: cross-account PutEvents and on_heartbeat's retries
GRACE = timedelta(minutes=2)
#: a path whose last heartbeat is older than two intervals and the grace is silent (one
#: lost or late heartbeat is not an alert; two in a row are). The minute sweep sees it
#: within a minute more: "silent" is told 12-13 minutes after the last heartbeat.
SILENT_AFTER = 2 * HEARTBEAT_INTERVAL + GRACE

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


@dataclass(frozen=True)
class Heartbeat:
    account_id: str
    region: str


def is_heartbeat(event: Any) -> bool:
    return (isinstance(event, Mapping) and event.get("source") == HEARTBEAT_SOURCE
            and event.get("detail-type") == HEARTBEAT_DETAIL_TYPE)


def parse_heartbeat(event: Any, *, bastion_account_id: str, catalog_account_ids: Iterable[str],
                    home_region: str | None = None) -> tuple[Heartbeat | None, str | None]:
    """(the heartbeat, None), or (None, why it is not believed). Only call it for
    :func:`is_heartbeat` events. ``home_region``: the bastion's own Region, where nothing
    forwards (its rules are the app's): a heartbeat from there was put by hand."""
    account = _account(_str(event, "account"))
    region = _str(event, "region")
    if account is None:
        return None, "no 12-digit envelope account"
    if region is None or not _REGION.match(region):
        return None, "no Region in the envelope"
    if account != bastion_account_id and account not in set(catalog_account_ids):
        return None, f"account {account} is neither the bastion nor a catalog account"
    if account == bastion_account_id and home_region is not None and region == home_region:
        return None, f"the bastion's home Region {region} sends no heartbeat (nothing forwards there)"
    return Heartbeat(account, region), None


def silent(last_seen: datetime, now: datetime) -> bool:
    """Has the path whose last heartbeat arrived at ``last_seen`` gone silent by ``now``?"""
    return now - last_seen > SILENT_AFTER
