"""A forwarded CloudTrail write event of a role session -> :class:`Call`. PURE: stdlib only.

What a JIT session's record says (tests/fixtures/README.md, ``activity_*.json``):
``userIdentity.type`` ``AssumedRole``, ``userIdentity.arn``
``arn:aws:sts::<account>:assumed-role/<role name>/<session name>`` (the session name of a
JIT session is the person's bastion IAM user: the role's trust policy demands it), and
``userIdentity.sessionContext.sessionIssuer.arn`` the role's ARN (with its path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from chalicelib.activity.notable import _service, notable
from chalicelib.alerts.cloudtrail import _dict, _str, parse_utc
from chalicelib.event_pattern import ACTIVITY_EXCLUDED_SOURCES, API_CALL

_SESSION_ARN = re.compile(r"^arn:aws[a-z-]*:sts::(\d{12}):assumed-role/([\w+=,.@-]+)/([\w+=,.@-]{2,64})$")
_EVENT_SOURCE = re.compile(r"[a-z0-9][a-z0-9.-]{0,99}\.amazonaws\.com", re.ASCII)
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,99}", re.ASCII)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)$")


@dataclass(frozen=True)
class Call:
    event_id: str
    event_time: datetime
    account_id: str
    role_arn: str  # the session issuer: the JIT role
    session_name: str  # the person's bastion IAM user, for a JIT session
    service: str  # eventSource without ".amazonaws.com"
    action: str  # eventName
    error_code: str | None  # e.g. AccessDenied: an attempt, counted and marked failed
    region: str | None
    source_ip: str | None
    notable: str | None  # a short label (chalicelib/activity/notable.py), or None

    @property
    def key(self) -> str:
        return f"{self.service}:{self.action}"

    @property
    def failed(self) -> bool:
        return self.error_code is not None


def parse_call(event: Any) -> Call | None:
    """The whole EventBridge event -> :class:`Call`; None for anything that is not a write
    management event of an assumed-role session whose issuer and session ARN agree (or is
    missing an ``eventID``/``eventTime``). Never raises on malformed input."""
    if not isinstance(event, Mapping) or event.get("detail-type") != API_CALL:
        return None
    source_name = event.get("source")
    # only AWS's own events: a source starting "aws." cannot be sent with PutEvents, so a
    # principal allowed to put events on the bus cannot forge a call (the patterns say so too)
    if not isinstance(source_name, str) or not source_name.startswith("aws.") \
            or source_name in ACTIVITY_EXCLUDED_SOURCES:
        return None
    detail = _dict(event, "detail")
    if detail.get("readOnly") is not False or detail.get("managementEvent") is not True:
        return None
    identity = _dict(detail, "userIdentity")
    if _str(identity, "type") != "AssumedRole":
        return None
    issuer = _str(_dict(_dict(identity, "sessionContext"), "sessionIssuer"), "arn")
    session = _SESSION_ARN.match(_str(identity, "arn") or "")
    role = _ROLE_ARN.match(issuer or "")
    event_id, event_time = _str(detail, "eventID"), parse_utc(detail.get("eventTime"))
    source, name = _str(detail, "eventSource"), _str(detail, "eventName")
    if not (session and role and event_id and event_time and source and name):
        return None
    # CloudTrail's own shapes, so nothing odd reaches the table or a message
    if not (_EVENT_SOURCE.fullmatch(source) and _EVENT_NAME.fullmatch(name) and len(event_id) <= 128):
        return None
    if session.group(1) != role.group(1) or session.group(2) != role.group(2):
        return None  # the session is not of the role its record names as issuer
    return Call(
        event_id=event_id, event_time=event_time, account_id=role.group(1), role_arn=issuer,
        session_name=session.group(3), service=_service(source), action=name,
        error_code=_str(detail, "errorCode"), region=_str(detail, "awsRegion"),
        source_ip=_str(detail, "sourceIPAddress"),
        notable=notable(source, name, detail.get("requestParameters")),
    )
