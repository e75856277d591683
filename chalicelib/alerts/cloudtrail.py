"""Reading one CloudTrail record as EventBridge delivers it. PURE: stdlib only (plus
the stdlib-only constants of ``chalicelib.event_pattern``).

The helpers every parser in this package shares: typed field access that never raises
(:func:`_str`, :func:`_dict`), timestamps (:func:`parse_utc`), account ids and
partitions, the envelope test for "a CloudTrail record of this service"
(:func:`_cloudtrail_detail`), the fields every record has (:func:`_common`) and whether
MFA was part of a call (:func:`_mfa`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

from chalicelib.event_pattern import API_CALL

CLOUDTRAIL_DETAIL_TYPE = API_CALL
STS_SOURCE = "aws.sts"
SIGNIN_SOURCE = "aws.signin"
IAM_SOURCE = "aws.iam"
AWS_INTERNAL = "AWS Internal"

_IAM_USER_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ACCOUNT_IN_ARN = re.compile(r"^arn:(aws[a-z-]*):[a-z]+::(\d{12}):")
# CloudTrail writes "2026-11-12T14:03:07Z"; accept fractions and explicit offsets, nothing looser.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


def _str(mapping: Any, key: str) -> str | None:
    """``mapping[key]`` when mapping is a dict and the value a non-empty str, else None."""
    if not isinstance(mapping, Mapping):
        return None
    value = mapping.get(key)
    if isinstance(value, str) and value:
        return value
    return None


def _dict(mapping: Any, key: str) -> Mapping[str, Any]:
    """``mapping[key]`` when it is a dict, else an empty dict (absent, null, wrong type)."""
    if not isinstance(mapping, Mapping):
        return {}
    value = mapping.get(key)
    return value if isinstance(value, Mapping) else {}


def parse_utc(value: Any) -> datetime | None:
    """A CloudTrail/ISO-8601 timestamp with ``Z`` or an offset -> aware UTC datetime.

    None for anything else (naive times, dates without a time, garbage, non-strings).
    """
    if not isinstance(value, str) or not _TIMESTAMP.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # e.g. month 13
        return None
    return parsed.astimezone(timezone.utc)


def _account(value: str | None) -> str | None:
    return value if value and _ACCOUNT_ID.match(value) else None


def _partition(identity: Mapping[str, Any]) -> str:
    found = _ACCOUNT_IN_ARN.match(_str(identity, "arn") or "")
    return found.group(1) if found else "aws"


def _cloudtrail_detail(event: Any, source: str, detail_type: str, event_source: str) -> Mapping[str, Any] | None:
    """``event["detail"]`` when the envelope says it is a CloudTrail record of ``source``."""
    if not isinstance(event, Mapping):
        return None
    if event.get("source") != source or event.get("detail-type") != detail_type:
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    found = detail.get("eventSource")
    if found is not None and found != event_source:
        return None
    return detail


@dataclass(frozen=True)
class _Common:
    event_id: str
    event_time: datetime
    identity: Mapping[str, Any]
    request: Mapping[str, Any]
    response: Mapping[str, Any]
    error_code: str | None
    shared_event_id: str | None
    recipient: str | None
    source_ip: str | None
    user_agent: str | None
    region: str | None


def _common(event: Mapping[str, Any], detail: Mapping[str, Any]) -> _Common | None:
    event_id = _str(detail, "eventID")
    event_time = parse_utc(detail.get("eventTime"))
    if event_id is None or event_time is None:
        return None
    return _Common(
        event_id=event_id,
        event_time=event_time,
        identity=_dict(detail, "userIdentity"),
        request=_dict(detail, "requestParameters"),
        response=_dict(detail, "responseElements"),
        error_code=_str(detail, "errorCode"),
        shared_event_id=_str(detail, "sharedEventID"),
        recipient=_str(detail, "recipientAccountId") or _str(event, "account"),
        source_ip=_str(detail, "sourceIPAddress"),
        user_agent=_str(detail, "userAgent"),
        region=_str(detail, "awsRegion") or _str(event, "region"),
    )


def _mfa(request: Mapping[str, Any], identity: Mapping[str, Any], *, failed: bool) -> bool | None:
    """Was MFA part of this call? True / False / None (unknown).

    A *failed* call proves nothing by what it sent: its ``serialNumber`` may have come
    with a wrong token. For failures only the caller's session (``sessionContext``,
    MFA at sign-in) counts, plus the one sure negative: a long-term key that presented
    no MFA device at all.
    """
    flag = _dict(_dict(identity, "sessionContext"), "attributes").get("mfaAuthenticated")
    if not failed and _str(request, "serialNumber"):
        return True
    if flag == "true" or flag is True:
        return True
    if flag == "false" or flag is False:
        return False
    access_key = _str(identity, "accessKeyId") or ""
    if identity.get("type") == "IAMUser" and access_key.startswith("AKIA") and not _str(request, "serialNumber"):
        return False  # long-term access key and no serialNumber: no MFA in this call
    return None  # federated (IdP decides), role-owner copy without parameters, a failure's serial, ...
