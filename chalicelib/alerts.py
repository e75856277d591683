"""CloudTrail event -> alert decision. PURE: stdlib only (plus the stdlib-only
constants of ``chalicelib.event_pattern``).

The handler (``on_role_assumed``) does the I/O: it checks the envelope
(:func:`envelope_problem`), calls :func:`parse_assumption` (or
:func:`parse_identity_change` for IAM changes), looks the account up in the catalog,
looks for a grant that :func:`covers` the event, asks :func:`decide_alert` what to do
and renders the result with ``chalicelib.slack.alert_views``. Everything that can be
decided without I/O is here.

What counts as "a way in" (:attr:`Assumption.access`): a role assumption
(``AssumeRole*``, the only kind a grant can cover), a root session on a member account
(``AssumeRoot``), a federation token (``GetFederationToken``) and a console sign-in of
the root user or an IAM user (``ConsoleLogin``).

Facts this relies on (tests/fixtures/README.md, with the fixture for each):

* A cross-account ``AssumeRole`` is logged twice with one ``sharedEventID``: the
  caller's copy (bastion account, ``userIdentity.type`` ``IAMUser``) and the role
  owner's copy (``userIdentity.type`` ``AWSAccount``). Both can reach the handler
  (the second one forwarded from the member account); dedupe on
  :attr:`Assumption.dedupe_key`.
* A denied cross-account call is logged in the caller's account only, sometimes with
  ``requestParameters: null``; the role ARN is then recovered from ``errorMessage``.
* The time that matters is ``detail.eventTime`` (when STS issued the credentials),
  never the EventBridge ``time``/arrival time: delivery can lag by minutes, and a
  grant that expired in between must still count as covering the event.
* The envelope's ``account`` is set by EventBridge (a member account that puts an event
  on the bastion bus cannot choose it); ``detail`` is whatever the sender wrote. Only
  events whose ``account`` is ``detail.recipientAccountId`` and an account Drawbridge
  knows are believed (:func:`envelope_problem`).
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Literal, Mapping

from chalicelib.event_pattern import API_CALL, CONSOLE_SIGN_IN, IAM_CHANGE_EVENT_NAMES
from chalicelib.event_pattern import ASSUME_ROLE_EVENT_NAMES as _EVENT_NAMES

__all__ = [
    "ASSUME_ROLE_EVENT_NAMES",
    "FAILURE_WINDOW",
    "AlertKind",
    "Assumption",
    "IdentityChange",
    "client_label",
    "covers",
    "decide_alert",
    "envelope_problem",
    "failure_group_key",
    "failure_window_start",
    "identity_change_loud",
    "parse_assumption",
    "parse_identity_change",
    "parse_utc",
]

ASSUME_ROLE_EVENT_NAMES = frozenset(_EVENT_NAMES)
IAM_CHANGES = frozenset(IAM_CHANGE_EVENT_NAMES)
CLOUDTRAIL_DETAIL_TYPE = API_CALL
STS_SOURCE = "aws.sts"
SIGNIN_SOURCE = "aws.signin"
IAM_SOURCE = "aws.iam"
AWS_INTERNAL = "AWS Internal"

Copy = Literal["caller", "role_owner"]
#: what kind of way in an event is (see the module docstring)
Access = Literal["role", "root_session", "federation_token", "console_login"]

# arn:<partition>:iam::<12 digits>:role/<path/>name   (IAM role names: [\w+=,.@-], paths add "/")
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/([\w+=,.@/-]+)$")
# "... is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/admin"
# (newer messages continue with " because no identity-based policy allows ...")
_ROLE_ARN_IN_MESSAGE = re.compile(r"on resource: (arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+)")
_IAM_USER_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ACCOUNT_IN_ARN = re.compile(r"^arn:(aws[a-z-]*):[a-z]+::(\d{12}):")
# CloudTrail writes "2026-11-12T14:03:07Z"; accept fractions and explicit offsets, nothing looser.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


# --------------------------------------------------------------------------- value


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


# --------------------------------------------------------------------------- parsing


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


def _role_arn(detail: Mapping[str, Any]) -> str | None:
    candidates: list[str | None] = [_str(_dict(detail, "requestParameters"), "roleArn")]
    resources = detail.get("resources")
    if isinstance(resources, list):
        candidates += [
            _str(r, "ARN") for r in resources if isinstance(r, Mapping) and r.get("type") == "AWS::IAM::Role"
        ]
    message = _str(detail, "errorMessage")
    if message:
        found = _ROLE_ARN_IN_MESSAGE.search(message)
        candidates.append(found.group(1) if found else None)
    for arn in candidates:
        if arn and _ROLE_ARN.match(arn):
            return arn
    return None


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


def parse_assumption(event: Any, *, bastion_account_id: str) -> Assumption | None:
    """The whole EventBridge event -> :class:`Assumption`, or None.

    None for anything that is not a way in (other APIs, ``SwitchRole`` sign-in events,
    federated console sign-ins, IAM changes: see :func:`parse_identity_change`) and for
    records missing what an alert needs (``eventID``, a valid ``eventTime``, a role ARN
    for a role assumption). Never raises on malformed input.
    """
    detail = _cloudtrail_detail(event, STS_SOURCE, CLOUDTRAIL_DETAIL_TYPE, "sts.amazonaws.com")
    if detail is not None:
        name = _str(detail, "eventName")
        if name in ASSUME_ROLE_EVENT_NAMES:
            return _parse_role_assumption(event, detail, name, bastion_account_id)
        if name == "AssumeRoot":
            return _parse_assume_root(event, detail, bastion_account_id)
        if name == "GetFederationToken":
            return _parse_federation_token(event, detail, bastion_account_id)
        return None
    detail = _cloudtrail_detail(event, SIGNIN_SOURCE, CONSOLE_SIGN_IN, "signin.amazonaws.com")
    if detail is not None and _str(detail, "eventName") == "ConsoleLogin":
        return _parse_console_login(event, detail, bastion_account_id)
    return None


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


def _account(value: str | None) -> str | None:
    return value if value and _ACCOUNT_ID.match(value) else None


def _partition(identity: Mapping[str, Any]) -> str:
    found = _ACCOUNT_IN_ARN.match(_str(identity, "arn") or "")
    return found.group(1) if found else "aws"


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


def _parse_role_assumption(event: Mapping[str, Any], detail: Mapping[str, Any], event_name: str,
                           bastion_account_id: str) -> Assumption | None:
    c = _common(event, detail)
    role_arn = _role_arn(detail)
    if c is None or role_arn is None:
        return None
    partition, account_id, role_name = _ROLE_ARN.match(role_arn).groups()  # type: ignore[union-attr]
    identity, request = c.identity, c.request
    caller_account = _str(identity, "accountId")
    invoked_by = _str(identity, "invokedBy")
    iam_user = _iam_user(identity, request, bastion_account_id, succeeded=c.error_code is None)
    via_console = (
        AWS_INTERNAL in (invoked_by, c.source_ip)
        or invoked_by == "signin.amazonaws.com"
        or (event_name == "AssumeRoleWithSAML" and (c.user_agent or "").startswith("aws-internal"))
    )
    # Recorded in the role's account for a caller from elsewhere (another account, or a
    # SAML/OIDC identity with no account at all): the role owner's copy.
    copy: Copy = (
        "role_owner"
        if c.recipient is not None and c.recipient == account_id and caller_account != account_id
        else "caller"
    )
    return _assumption(
        c, event_name=event_name, role_arn=role_arn, account_id=account_id, role_name=role_name,
        access="role", bastion_account_id=bastion_account_id, error_code=c.error_code,
        who=_who(identity, request, c.response, iam_user=iam_user, partition=partition),
        session_name=_str(request, "roleSessionName"), via_console=via_console,
        mfa=_mfa(request, identity, failed=c.error_code is not None),
        error_message=_str(detail, "errorMessage"), copy=copy,
    )


def _parse_assume_root(event: Mapping[str, Any], detail: Mapping[str, Any],
                       bastion_account_id: str) -> Assumption | None:
    """``sts:AssumeRoot``: a root session on ``requestParameters.targetPrincipal`` (an
    account id or a principal ARN in it). Recorded in the caller's account (the
    organization's management account or the delegated administrator for IAM)."""
    c = _common(event, detail)
    if c is None:
        return None
    target_value = _str(c.request, "targetPrincipal")
    in_arn = _ACCOUNT_IN_ARN.match(target_value or "")
    target = _account(target_value) or (in_arn.group(2) if in_arn else None)
    if target is None:  # e.g. a denied call logged without its parameters
        message = _str(detail, "errorMessage") or ""
        found = re.search(r"arn:aws[a-z-]*:iam::(\d{12}):root", message)
        target = found.group(1) if found else None
    partition = _partition(c.identity)
    caller_account = _str(c.identity, "accountId")
    policy = _dict(c.request, "taskPolicyArn")
    return _assumption(
        c, event_name="AssumeRoot", role_arn=f"arn:{partition}:iam::{target}:root" if target else "",
        account_id=target or "", role_name="root", access="root_session",
        bastion_account_id=bastion_account_id, error_code=c.error_code,
        mfa=_mfa(c.request, c.identity, failed=c.error_code is not None),
        error_message=_str(detail, "errorMessage"),
        copy="role_owner" if target and c.recipient == target and caller_account != target else "caller",
        note=_str(policy, "arn") or (target_value if target_value and target is None else None),
    )


def _parse_federation_token(event: Mapping[str, Any], detail: Mapping[str, Any],
                            bastion_account_id: str) -> Assumption | None:
    """``sts:GetFederationToken``: federated-user credentials in the caller's own account."""
    c = _common(event, detail)
    if c is None:
        return None
    account = _account(_str(c.identity, "accountId")) or _account(c.recipient)
    if account is None:
        return None
    name = _str(c.request, "name")
    federated = _dict(c.response, "federatedUser")
    target = _str(federated, "arn") or f"arn:{_partition(c.identity)}:sts::{account}:federated-user/{name or '?'}"
    return _assumption(
        c, event_name="GetFederationToken", role_arn=target, account_id=account,
        role_name=f"federated-user/{name or '?'}", access="federation_token",
        bastion_account_id=bastion_account_id, error_code=c.error_code, session_name=name,
        mfa=_mfa(c.request, c.identity, failed=c.error_code is not None),
        error_message=_str(detail, "errorMessage"),
    )


def _parse_console_login(event: Mapping[str, Any], detail: Mapping[str, Any],
                         bastion_account_id: str) -> Assumption | None:
    """``ConsoleLogin`` of the root user or an IAM user (nobody else: federated and
    role sign-ins are the ``AssumeRole*`` behind them). A failed sign-in says so in
    ``responseElements.ConsoleLogin`` (``"Failure"``) and ``errorMessage``
    (``"Failed authentication"``), without an ``errorCode``."""
    c = _common(event, detail)
    caller_type = _str(c.identity, "type") if c else None
    if c is None or caller_type not in ("Root", "IAMUser"):
        return None
    account = _account(_str(c.identity, "accountId")) or _account(c.recipient)
    if account is None:
        return None
    message = _str(detail, "errorMessage")
    outcome = _str(c.response, "ConsoleLogin")
    failed = c.error_code is not None or message is not None or outcome == "Failure"
    partition = _partition(c.identity)
    if caller_type == "Root":
        target, role_name = _str(c.identity, "arn") or f"arn:{partition}:iam::{account}:root", "root"
    else:
        user = _str(c.identity, "userName") or "?"
        target, role_name = _str(c.identity, "arn") or f"arn:{partition}:iam::{account}:user/{user}", f"user/{user}"
    if failed:
        mfa = _mfa({}, c.identity, failed=True)
    else:
        used = _str(_dict(detail, "additionalEventData"), "MFAUsed")
        mfa = {"Yes": True, "No": False}.get(used or "")
    return _assumption(
        c, event_name="ConsoleLogin", role_arn=target, account_id=account, role_name=role_name,
        access="console_login", bastion_account_id=bastion_account_id,
        error_code=(c.error_code or message or "Failure") if failed else None,
        who=target if caller_type == "Root" else None, via_console=True, mfa=mfa, error_message=message,
    )


# --------------------------------------------------------------------------- small rules


# (substring of the lower-cased user agent, label); first match wins, specific before generic.
_CLIENTS: tuple[tuple[str, str], ...] = (
    ("aws-internal", "console"),
    ("aws-vault", "aws-vault"),
    ("granted", "Granted"),
    ("terraform", "Terraform"),
    ("aws-cli/", "AWS CLI"),
    ("boto3/", "SDK (boto3)"),
    ("botocore/", "SDK (botocore)"),
    ("aws-sdk-go", "SDK (Go)"),
    ("aws-sdk-java", "SDK (Java)"),
    ("aws-sdk-js", "SDK (JavaScript)"),
    ("aws-sdk-dotnet", "SDK (.NET)"),
    ("aws-sdk-rust", "SDK (Rust)"),
    ("mozilla/", "browser"),
)


def client_label(user_agent: str | None, via_console: bool) -> str:
    """A short human name for the client that made the call ("console", "AWS CLI", ...)."""
    if via_console or user_agent == AWS_INTERNAL:
        return "console"
    if not isinstance(user_agent, str) or not user_agent:
        return "unknown client"
    lowered = user_agent.lower()
    for needle, label in _CLIENTS:
        if needle in lowered:
            return label
    return "other client"


def covers(grant_granted_at: datetime, grant_ends_at: datetime, event_time: datetime) -> bool:
    """Whether a grant covers an assumption: ``granted_at <= event_time <= ends_at``.

    Both ends inclusive. ``grant_ends_at`` is when the grant stopped (its expiry, or
    the revocation time if it was revoked earlier). ``event_time`` must be the
    CloudTrail ``eventTime``. All three must be timezone-aware (ValueError otherwise:
    a naive time here is a bug, not a policy question).
    """
    for value in (grant_granted_at, grant_ends_at, event_time):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"covers() needs timezone-aware datetimes, got {value!r}")
    return grant_granted_at <= event_time <= grant_ends_at


# --------------------------------------------------------------------------- decision


class AlertKind(enum.Enum):
    """What an assumption means, and what the security channel sees for it.

    ``COVERED`` -- production role, succeeded, an approved grant covers the event time.
        Security channel: a normal message "Production role assumed" (who, account/role,
        event time, source IP, client, MFA, the covering grant's request id, reason,
        approvers and expiry). The grant's approval card also gets a threaded
        "used at ..." reply.
    ``UNCOVERED`` -- production role, succeeded, no covering grant. Loud: a distinct
        ":rotating_light: NO APPROVED GRANT" alert with ``<!here>``. It may be break-glass,
        drift (a standing permission Drawbridge did not create) or a bypass; a human must
        find out which.
    ``FAILED_ATTEMPT`` -- production role, the call failed (``errorCode`` present).
        Security channel: a *quiet* one-line notice (no header, no mention), and the
        audit record. Decision: post it rather than only record it. A single denial is
        usually someone who forgot to request access first (alice at 13:58, two minutes
        before her request), which a quiet line makes cheap to ignore; but repeated
        denials on production roles are reconnaissance or a stolen key probing what it
        can reach, and the only place a human will notice a pattern is the channel.
        Repeats do not flood it: attempts of one caller on one target within one
        :data:`FAILURE_WINDOW` share one line, updated in place with the count
        (:func:`failure_group_key`); every attempt is still its own audit record.
        (Denied cross-account calls are logged in the caller's account only, so these
        come from the bastion's own bus.)

    The other ways in (``Assumption.access`` other than ``"role"``) are never covered by
    a grant: in a production account they are ``UNCOVERED`` (a root or IAM-user console
    sign-in, a federation token), failed ones ``FAILED_ATTEMPT``. A root session
    (``AssumeRoot``) is ``UNCOVERED`` whatever the account, and so is a root console
    sign-in into the bastion itself.
    ``NOT_PRODUCTION`` -- the role's account is in the catalog and not production.
        Nothing in Slack; log only.
    ``UNKNOWN_ACCOUNT`` -- the role's account is not in the catalog (the bastion's own
        roles, unmanaged accounts). Nothing in Slack; log only: accounts Drawbridge does
        not manage are not its to judge, and the bastion's own role assumptions would
        drown the channel.
    """

    COVERED = "covered"
    UNCOVERED = "uncovered"
    FAILED_ATTEMPT = "failed_attempt"
    NOT_PRODUCTION = "not_production"
    UNKNOWN_ACCOUNT = "unknown_account"

    @property
    def posts_to_security_channel(self) -> bool:
        return self in _POSTED

    @property
    def loud(self) -> bool:
        return self is AlertKind.UNCOVERED


_POSTED = frozenset({AlertKind.COVERED, AlertKind.UNCOVERED, AlertKind.FAILED_ATTEMPT})


def decide_alert(a: Assumption, *, production: bool | None, has_grant: bool,
                 in_bastion: bool = False) -> AlertKind:
    """Classify an assumption (see :class:`AlertKind` for what each kind shows).

    ``production`` is the catalog flag of the *role's account* (``a.account_id``),
    None when the account is not in the catalog. It is deliberately the account's flag,
    not the role's: a role missing from the catalog in a production account still
    alerts. ``has_grant``: an approved grant for this role and this IAM user
    :func:`covers` ``a.event_time``. A failure is a failed attempt even when a grant
    exists (e.g. the call was made without MFA). ``in_bastion``: ``a.account_id`` is the
    bastion account.
    """
    if a.access == "root_session":
        return AlertKind.FAILED_ATTEMPT if a.failed else AlertKind.UNCOVERED
    if a.access == "console_login" and a.caller_type == "Root" and in_bastion:
        production = True
    if production is None:
        return AlertKind.UNKNOWN_ACCOUNT
    if not production:
        return AlertKind.NOT_PRODUCTION
    if a.failed:
        return AlertKind.FAILED_ATTEMPT
    if a.access != "role":
        return AlertKind.UNCOVERED  # no grant can cover a sign-in or a federation token
    return AlertKind.COVERED if has_grant else AlertKind.UNCOVERED


# --------------------------------------------------------------------------- failed attempts, grouped

#: failed attempts of one caller on one target within one window share one Slack line
FAILURE_WINDOW = timedelta(minutes=10)


def failure_window_start(moment: datetime) -> datetime:
    """The start of the fixed window (14:00, 14:10, ... UTC) ``moment`` falls in."""
    seconds = int(FAILURE_WINDOW.total_seconds())
    epoch = int(moment.astimezone(timezone.utc).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=timezone.utc)


def failure_group_key(a: Assumption) -> str:
    """Which failed attempts share one Slack line: same caller (the bastion IAM user, else
    who CloudTrail names), same target, same :data:`FAILURE_WINDOW` of event time.
    Windows are fixed, so every handler, concurrent or redelivered, computes the same key
    from the event alone. Event data is hashed: the key has a bounded, safe alphabet."""
    caller = a.iam_user or a.who
    digest = hashlib.sha256("\n".join([caller, a.access, a.role_arn]).encode()).hexdigest()[:40]
    return f"{failure_window_start(a.event_time).strftime('%Y%m%dT%H%MZ')}#{digest}"


# --------------------------------------------------------------------------- the envelope


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


# --------------------------------------------------------------------------- IAM changes to a person


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
