"""CloudTrail ``AssumeRole*`` event -> alert decision. PURE: stdlib only (plus the
stdlib-only constants of ``chalicelib.event_pattern``).

The handler (``on_role_assumed``) does the I/O: it calls :func:`parse_assumption`,
looks the role's account up in the catalog, looks for a grant that :func:`covers`
the event, asks :func:`decide_alert` what to do and renders the result with
``chalicelib.slack.alert_views``. Everything that can be decided without I/O is here.

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
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Mapping

from chalicelib.event_pattern import ASSUME_ROLE_EVENT_NAMES as _EVENT_NAMES

__all__ = [
    "ASSUME_ROLE_EVENT_NAMES",
    "AlertKind",
    "Assumption",
    "client_label",
    "covers",
    "decide_alert",
    "parse_assumption",
    "parse_utc",
]

ASSUME_ROLE_EVENT_NAMES = frozenset(_EVENT_NAMES)
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
STS_SOURCE = "aws.sts"
AWS_INTERNAL = "AWS Internal"

Copy = Literal["caller", "role_owner"]

# arn:<partition>:iam::<12 digits>:role/<path/>name   (IAM role names: [\w+=,.@-], paths add "/")
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/([\w+=,.@/-]+)$")
# "... is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/admin"
# (newer messages continue with " because no identity-based policy allows ...")
_ROLE_ARN_IN_MESSAGE = re.compile(r"on resource: (arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+)")
_IAM_USER_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
# CloudTrail writes "2026-11-12T14:03:07Z"; accept fractions and explicit offsets, nothing looser.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


# --------------------------------------------------------------------------- value


@dataclass(frozen=True)
class Assumption:
    """One ``AssumeRole*`` CloudTrail record, reduced to what alerting needs.

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


def _mfa(request: Mapping[str, Any], identity: Mapping[str, Any]) -> bool | None:
    if _str(request, "serialNumber"):
        return True
    flag = _dict(_dict(identity, "sessionContext"), "attributes").get("mfaAuthenticated")
    if flag == "true" or flag is True:
        return True
    if flag == "false" or flag is False:
        return False
    access_key = _str(identity, "accessKeyId") or ""
    if identity.get("type") == "IAMUser" and access_key.startswith("AKIA"):
        return False  # long-term access key and no serialNumber: no MFA in this call
    return None  # federated (IdP decides), role-owner copy without parameters, ...


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


def parse_assumption(event: Any, *, bastion_account_id: str) -> Assumption | None:
    """The whole EventBridge event -> :class:`Assumption`, or None.

    None for anything that is not an ``AssumeRole*`` CloudTrail call (other APIs,
    ``aws.signin`` events, ...) and for records missing what an alert needs
    (``eventID``, a valid ``eventTime``, a role ARN). Never raises on malformed input.
    """
    if not isinstance(event, Mapping):
        return None
    if event.get("source") != STS_SOURCE or event.get("detail-type") != CLOUDTRAIL_DETAIL_TYPE:
        return None
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        return None
    event_name = _str(detail, "eventName")
    if event_name not in ASSUME_ROLE_EVENT_NAMES:
        return None
    event_source = detail.get("eventSource")
    if event_source is not None and event_source != "sts.amazonaws.com":
        return None
    event_id = _str(detail, "eventID")
    event_time = parse_utc(detail.get("eventTime"))
    role_arn = _role_arn(detail)
    if event_id is None or event_time is None or role_arn is None:
        return None
    partition, account_id, role_name = _ROLE_ARN.match(role_arn).groups()  # type: ignore[union-attr]

    identity = _dict(detail, "userIdentity")
    request = _dict(detail, "requestParameters")
    response = _dict(detail, "responseElements")
    error_code = _str(detail, "errorCode")
    shared_event_id = _str(detail, "sharedEventID")
    recipient = _str(detail, "recipientAccountId") or _str(event, "account")
    caller_account = _str(identity, "accountId")
    caller_type = _str(identity, "type")
    source_ip = _str(detail, "sourceIPAddress")
    user_agent = _str(detail, "userAgent")
    invoked_by = _str(identity, "invokedBy")
    iam_user = _iam_user(identity, request, bastion_account_id, succeeded=error_code is None)

    via_console = (
        AWS_INTERNAL in (invoked_by, source_ip)
        or invoked_by == "signin.amazonaws.com"
        or (event_name == "AssumeRoleWithSAML" and (user_agent or "").startswith("aws-internal"))
    )
    # Recorded in the role's account for a caller from elsewhere (another account, or a
    # SAML/OIDC identity with no account at all): the role owner's copy.
    copy: Copy = (
        "role_owner"
        if recipient is not None and recipient == account_id and caller_account != account_id
        else "caller"
    )
    return Assumption(
        event_id=event_id,
        shared_event_id=shared_event_id,
        dedupe_key=shared_event_id or event_id,
        event_name=event_name,
        event_time=event_time,
        role_arn=role_arn,
        account_id=account_id,
        role_name=role_name,
        caller_type=caller_type,
        iam_user=iam_user,
        who=_who(identity, request, response, iam_user=iam_user, partition=partition),
        session_name=_str(request, "roleSessionName"),
        source_ip=source_ip,
        user_agent=user_agent,
        via_console=via_console,
        mfa=_mfa(request, identity),
        error_code=error_code,
        error_message=_str(detail, "errorMessage"),
        recipient_account=recipient if recipient and _ACCOUNT_ID.match(recipient) else None,
        region=_str(detail, "awsRegion") or _str(event, "region"),
        copy=copy,
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
        (Denied cross-account calls are logged in the caller's account only, so these
        come from the bastion's own bus.)
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


def decide_alert(a: Assumption, *, production: bool | None, has_grant: bool) -> AlertKind:
    """Classify an assumption (see :class:`AlertKind` for what each kind shows).

    ``production`` is the catalog flag of the *role's account* (``a.account_id``),
    None when the account is not in the catalog. It is deliberately the account's flag,
    not the role's: a role missing from the catalog in a production account still
    alerts. ``has_grant``: an approved grant for this role and this IAM user
    :func:`covers` ``a.event_time``. A failure is a failed attempt even when a grant
    exists (e.g. the call was made without MFA).
    """
    if production is None:
        return AlertKind.UNKNOWN_ACCOUNT
    if not production:
        return AlertKind.NOT_PRODUCTION
    if a.failed:
        return AlertKind.FAILED_ATTEMPT
    return AlertKind.COVERED if has_grant else AlertKind.UNCOVERED
