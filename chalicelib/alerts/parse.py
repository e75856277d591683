"""CloudTrail event -> :class:`~chalicelib.alerts.assumption.Assumption`. PURE: stdlib
only (plus the stdlib-only constants of ``chalicelib.event_pattern``).

One parser per way in: a role assumption (``AssumeRole*``), a root session
(``AssumeRoot``), a federation token (``GetFederationToken``) and a console sign-in of
the root user or an IAM user (``ConsoleLogin``). :func:`parse_assumption` picks one.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from chalicelib.alerts.assumption import Assumption, Copy, _assumption, _iam_user, _who
from chalicelib.alerts.cloudtrail import (
    _ACCOUNT_IN_ARN,
    AWS_INTERNAL,
    CLOUDTRAIL_DETAIL_TYPE,
    SIGNIN_SOURCE,
    STS_SOURCE,
    _account,
    _cloudtrail_detail,
    _common,
    _dict,
    _mfa,
    _partition,
    _str,
)
from chalicelib.event_pattern import ASSUME_ROLE_EVENT_NAMES as _EVENT_NAMES
from chalicelib.event_pattern import CONSOLE_SIGN_IN

ASSUME_ROLE_EVENT_NAMES = frozenset(_EVENT_NAMES)

# arn:<partition>:iam::<12 digits>:role/<path/>name   (IAM role names: [\w+=,.@-], paths add "/")
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/([\w+=,.@/-]+)$")
# "... is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::222222222222:role/admin"
# (newer messages continue with " because no identity-based policy allows ...")
_ROLE_ARN_IN_MESSAGE = re.compile(r"on resource: (arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+)")


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
