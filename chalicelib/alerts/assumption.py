"""The :class:`Assumption` value (one way into an account) and how its caller fields
are read from a CloudTrail record. PURE: stdlib only.

The per-event parsers that build it are in ``chalicelib.alerts.parse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping

from chalicelib.alerts.cloudtrail import _IAM_USER_NAME, _account, _Common, _partition, _str

Copy = Literal["caller", "role_owner"]
#: what kind of way in an event is (see the ``chalicelib.alerts`` docstring)
Access = Literal["role", "root_session", "federation_token", "console_login"]


@dataclass(frozen=True)
class Assumption:
    """One CloudTrail record of a way in, reduced to what alerting needs.

    For a role assumption (``access == "role"``) ``role_arn`` / ``role_name`` are the
    role's. For the other kinds they name what was entered, and ``account_id`` is the
    account it was entered in: ``arn:aws:iam::<target>:root`` / ``root`` for a root
    session (``AssumeRoot``, the target member account); the federated user's ARN /
    ``federated-user/<name>`` for a federation token (the caller's account); the
    signing-in principal's ARN / ``root`` or ``user/<name>`` for a console sign-in.

    All strings are raw event data: escape them before putting them into Slack.
    """

    event_id: str
    shared_event_id: str | None
    dedupe_key: str  # shared_event_id or event_id: equal for both copies of one call
    event_name: str
    event_time: datetime  # aware UTC, from detail.eventTime
    role_arn: str
    account_id: str  # the role's account
    role_name: str  # after ":role/", may include a path ("ops/admin")
    caller_type: str | None  # userIdentity.type
    iam_user: str | None  # bastion IAM user name, when knowable
    who: str  # human display of the caller
    session_name: str | None
    source_ip: str | None
    user_agent: str | None
    via_console: bool
    mfa: bool | None
    error_code: str | None
    error_message: str | None
    recipient_account: str | None
    region: str | None
    copy: Copy
    access: Access = "role"
    note: str | None = None  # AssumeRoot: the task policy ARN

    @property
    def failed(self) -> bool:
        return self.error_code is not None


def _iam_user(
    identity: Mapping[str, Any], request: Mapping[str, Any], bastion_account_id: str, *, succeeded: bool
) -> str | None:
    caller_type = identity.get("type")
    caller_account = _str(identity, "accountId")
    if caller_account != bastion_account_id:
        return None
    if caller_type == "IAMUser":
        name = _str(identity, "userName")
    elif caller_type == "AWSAccount" and succeeded:
        # Role-owner copy: CloudTrail names only the calling account. Member-account
        # trust policies require sts:RoleSessionName = ${aws:username}, so a call that
        # *succeeded* from the bastion carries the IAM user name as its session name.
        # ${aws:username} does not exist for role sessions (principal id "AROA...:x"),
        # so such callers cannot have satisfied the trust policy: not an IAM user.
        if (_str(identity, "principalId") or "").startswith("AROA"):
            return None
        name = _str(request, "roleSessionName")
    else:
        return None
    return name if name and _IAM_USER_NAME.match(name) else None


def _who(
    identity: Mapping[str, Any],
    request: Mapping[str, Any],
    response: Mapping[str, Any],
    *,
    iam_user: str | None,
    partition: str,
) -> str:
    caller_type = identity.get("type")
    session = _str(request, "roleSessionName")
    if caller_type == "IAMUser":
        found = _str(identity, "arn") or _str(identity, "userName")
    elif caller_type == "AWSAccount":
        account = _str(identity, "accountId")
        if iam_user and account:
            found = f"arn:{partition}:iam::{account}:user/{iam_user}"
        elif session and account:
            found = f"session {session} from account {account}"
        else:
            found = account and f"account {account}"
    elif caller_type == "SAMLUser":
        found = _str(response, "subject") or _str(identity, "userName") or session
    elif caller_type == "WebIdentityUser":
        subject = _str(response, "subjectFromWebIdentityToken") or _str(identity, "userName")
        provider = _str(identity, "identityProvider")
        found = f"{subject} ({provider})" if subject and provider else subject or session
    elif caller_type == "AWSService":
        found = _str(identity, "invokedBy")
    else:
        found = _str(identity, "arn")
    return found or _str(identity, "principalId") or session or "unknown caller"


def _assumption(c: _Common, *, event_name: str, role_arn: str, account_id: str, role_name: str,
                access: Access, bastion_account_id: str, error_code: str | None = None,
                who: str | None = None, session_name: str | None = None, via_console: bool = False,
                mfa: bool | None = None, error_message: str | None = None, copy: Copy = "caller",
                note: str | None = None) -> Assumption:
    identity = c.identity
    failed = error_code is not None
    iam_user = _iam_user(identity, c.request, bastion_account_id, succeeded=not failed)
    return Assumption(
        event_id=c.event_id,
        shared_event_id=c.shared_event_id,
        dedupe_key=c.shared_event_id or c.event_id,
        event_name=event_name,
        event_time=c.event_time,
        role_arn=role_arn,
        account_id=account_id,
        role_name=role_name,
        caller_type=_str(identity, "type"),
        iam_user=iam_user,
        who=who or _who(identity, c.request, c.response, iam_user=iam_user, partition=_partition(identity)),
        session_name=session_name,
        source_ip=c.source_ip,
        user_agent=c.user_agent,
        via_console=via_console,
        mfa=mfa,
        error_code=error_code,
        error_message=error_message,
        recipient_account=_account(c.recipient),
        region=c.region,
        copy=copy,
        access=access,
        note=note,
    )
