"""IAM changes to a person's credentials: an ``aws.iam`` CloudTrail event ->
:class:`IdentityChange`, and whether the security channel hears it loudly. PURE: stdlib
only (plus the stdlib-only constants of ``chalicelib.event_pattern``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.alerts.cloudtrail import (
    _IAM_USER_NAME,
    AWS_INTERNAL,
    CLOUDTRAIL_DETAIL_TYPE,
    IAM_SOURCE,
    _account,
    _cloudtrail_detail,
    _common,
    _dict,
    _mfa,
    _str,
)
from chalicelib.event_pattern import IAM_CHANGE_EVENT_NAMES

IAM_CHANGES = frozenset(IAM_CHANGE_EVENT_NAMES)


@dataclass(frozen=True)
class IdentityChange:
    """One IAM call that changed (or tried to change) how an IAM user signs in: an MFA
    device enabled / deactivated / deleted, an access key created, a console password
    created or changed. All strings are raw event data."""

    event_id: str
    event_name: str
    event_time: datetime
    account_id: str | None  # detail.recipientAccountId: where the IAM user lives
    iam_user: str | None  # whose credentials changed
    subject: str | None  # the MFA device serial or the access key id, when recorded
    actor: str  # who made the call (an ARN when CloudTrail gives one)
    actor_type: str | None  # userIdentity.type
    actor_user: str | None  # the caller's own IAM user name, when the caller is an IAM user of that account
    mfa: bool | None  # MFA in the caller's session
    source_ip: str | None
    user_agent: str | None
    via_console: bool
    region: str | None
    error_code: str | None
    error_message: str | None

    @property
    def failed(self) -> bool:
        return self.error_code is not None

    @property
    def by_self(self) -> bool:
        """The person changed their own credentials (names match case-insensitively, as IAM's)."""
        return bool(self.actor_user and self.iam_user and self.actor_user.lower() == self.iam_user.lower())


def parse_identity_change(event: Any) -> IdentityChange | None:
    """An ``aws.iam`` CloudTrail event of :data:`IAM_CHANGES` -> :class:`IdentityChange`.

    The changed user is ``requestParameters.userName``; when absent (IAM's "the caller's
    own user"), the user named in the response (``accessKey.userName``,
    ``loginProfile.userName``), then the device name of a deleted virtual MFA device
    (``arn:...:mfa/<name>``), then the caller's own IAM user. Never raises.
    """
    detail = _cloudtrail_detail(event, IAM_SOURCE, CLOUDTRAIL_DETAIL_TYPE, "iam.amazonaws.com")
    if detail is None or _str(detail, "eventName") not in IAM_CHANGES:
        return None
    c = _common(event, detail)  # type: ignore[arg-type]
    if c is None:
        return None
    name = _str(detail, "eventName") or ""
    identity, request, response = c.identity, c.request, c.response
    account = _account(_str(detail, "recipientAccountId")) or _account(_str(event, "account"))
    actor_type = _str(identity, "type")
    actor_user = (_str(identity, "userName")
                  if actor_type == "IAMUser" and _str(identity, "accountId") == account else None)
    serial = _str(request, "serialNumber")
    access_key = _dict(response, "accessKey")
    device = serial.rsplit("/", 1)[-1] if serial and ":mfa/" in serial else None
    target = (_str(request, "userName") or _str(access_key, "userName")
              or _str(_dict(response, "loginProfile"), "userName")
              or (device if name == "DeleteVirtualMFADevice" else None) or actor_user)
    failed = c.error_code is not None
    invoked_by = _str(identity, "invokedBy")
    return IdentityChange(
        event_id=c.event_id,
        event_name=name,
        event_time=c.event_time,
        account_id=account,
        iam_user=target if target and _IAM_USER_NAME.match(target) else None,
        subject=serial or _str(access_key, "accessKeyId"),
        actor=_str(identity, "arn") or _str(identity, "principalId") or invoked_by or "unknown caller",
        actor_type=actor_type,
        actor_user=actor_user,
        mfa=_mfa({}, identity, failed=failed),
        source_ip=c.source_ip,
        user_agent=c.user_agent,
        via_console=(AWS_INTERNAL in (invoked_by, c.source_ip, c.user_agent)
                     or (c.user_agent or "").startswith("aws-internal")
                     or detail.get("sessionCredentialFromConsole") == "true"),
        region=c.region,
        error_code=c.error_code,
        error_message=_str(detail, "errorMessage"),
    )


def identity_change_loud(c: IdentityChange) -> bool:
    """Loud (``<!here>``) unless the person did it themselves with MFA in their session.
    A failed call changed nothing: never loud."""
    return not c.failed and not (c.by_self and c.mfa is True)
