"""Calls that blind the alert path itself: an ``aws.cloudtrail`` or ``aws.events``
CloudTrail event -> :class:`PathTamper`. PURE: stdlib only (plus the stdlib-only
constants of ``chalicelib.event_pattern``).

The pattern (``chalicelib.event_pattern``) already narrows EventBridge calls to
Drawbridge's rules (``WATCHED_RULE_PREFIXES``: the forwarding rules, the watchdog and
the bastion's own); the parser checks the same again, so an event that reaches the
handler some other way is never mistaken for tampering with the path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.alerts.cloudtrail import (
    CLOUDTRAIL_DETAIL_TYPE,
    _account,
    _cloudtrail_detail,
    _common,
    _str,
)
from chalicelib.event_pattern import (
    RULE_TAMPER_EVENT_NAMES,
    TARGET_TAMPER_EVENT_NAMES,
    TRAIL_TAMPER_EVENT_NAMES,
    WATCHED_RULE_PREFIXES,
)

CLOUDTRAIL_SOURCE = "aws.cloudtrail"
EVENTS_SOURCE = "aws.events"


@dataclass(frozen=True)
class PathTamper:
    """One call that stopped, removed or narrowed a trail, or removed, disabled or emptied a
    Drawbridge forwarding rule (or tried to). All strings are raw event data."""

    event_id: str
    event_name: str
    event_time: datetime
    account_id: str | None  # detail.recipientAccountId
    region: str | None
    service: str  # "trail" or "rule": what was touched
    target: str | None  # the trail's name / ARN, or the rule's name
    actor: str
    source_ip: str | None
    user_agent: str | None
    error_code: str | None

    @property
    def failed(self) -> bool:
        return self.error_code is not None


def parse_tamper(event: Any) -> PathTamper | None:
    """A CloudTrail event of a call that blinds the alert path -> :class:`PathTamper`;
    None for anything else (other calls, other rules' calls). Never raises."""
    trail = _cloudtrail_detail(event, CLOUDTRAIL_SOURCE, CLOUDTRAIL_DETAIL_TYPE, "cloudtrail.amazonaws.com")
    rule = (None if trail is not None
            else _cloudtrail_detail(event, EVENTS_SOURCE, CLOUDTRAIL_DETAIL_TYPE, "events.amazonaws.com"))
    detail = trail if trail is not None else rule
    if detail is None:
        return None
    name = _str(detail, "eventName") or ""
    c = _common(event, detail)  # type: ignore[arg-type]
    if c is None:
        return None
    if trail is not None:
        if name not in TRAIL_TAMPER_EVENT_NAMES:
            return None
        # StopLogging / DeleteTrail / UpdateTrail name it "name", PutEventSelectors "trailName"
        target = _str(c.request, "name") or _str(c.request, "trailName")
    else:
        field = ("name" if name in RULE_TAMPER_EVENT_NAMES
                 else "rule" if name in TARGET_TAMPER_EVENT_NAMES else None)
        target = _str(c.request, field) if field else None
        if target is None or not target.startswith(WATCHED_RULE_PREFIXES):
            return None
    identity = c.identity
    return PathTamper(
        event_id=c.event_id,
        event_name=name,
        event_time=c.event_time,
        account_id=_account(_str(detail, "recipientAccountId")) or _account(_str(event, "account")),
        region=c.region,
        service="trail" if trail is not None else "rule",
        target=target,
        actor=(_str(identity, "arn") or _str(identity, "principalId") or _str(identity, "invokedBy")
               or "unknown caller"),
        source_ip=c.source_ip,
        user_agent=c.user_agent,
        error_code=c.error_code,
    )
