"""What an assumption means: :class:`AlertKind` and :func:`decide_alert`, whether a grant
:func:`covers` it, how failed attempts are grouped (:func:`failure_group_key`) and
which client made the call (:func:`client_label`). PURE: stdlib only.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime, timedelta, timezone

from chalicelib.alerts.assumption import Assumption
from chalicelib.alerts.cloudtrail import AWS_INTERNAL


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
