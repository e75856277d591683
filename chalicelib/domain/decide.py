"""Request, approval, denial and revocation rules as pure decisions.

Each ``decide_*`` returns a :class:`Decision` carrying its reason, fit to show
in Slack. The caller executes it (conditional write, then side effects); the
rules live only here and are tested from tables (tests/unit/test_decide.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol, Sequence

from .duration import DurationError, DurationTooLong, format_duration, parse_duration
from .eligibility import approval_blocker
from .model import GrantStatus, Request, RequestStatus, hhmm


class RoleRules(Protocol):
    """What the rules need from a catalog role (as the catalog says *now*)."""

    approvers: Sequence[str]
    approvals_required: int
    self_approval: bool
    requesters: Sequence[str]


class Outcome(str, Enum):
    REFUSED = "refused"
    COUNTED = "counted"  # an approval that counts, more are needed
    APPROVED = "approved"  # the final approval: grant now
    DENIED = "denied"
    CANCEL = "cancel"  # end a pending request
    REVOKE = "revoke"  # end an active grant
    REVIEWED = "reviewed"  # a break-glass grant acknowledged or flagged


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    #: an approval that counts: how many count now, of how many needed (0: not an approval)
    count: int = 0
    required: int = 0

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.REFUSED


def _refuse(reason: str) -> Decision:
    return Decision(Outcome.REFUSED, reason)


def _people(keys: Sequence[str]) -> str:
    return ", ".join(f"@{k}" for k in keys) or "nobody"


def describe_outcome(req: Request) -> str:
    """Why a request is no longer open, e.g. 'already approved by @bob, @carol at 14:02 UTC'."""
    rid = req.request_id
    when = hhmm(req.decided_at) if req.decided_at else "?"
    if req.grant_status is GrantStatus.REVOKED:
        return f"{rid} was already revoked by @{req.ended_by} at {hhmm(req.ended_at)}"
    if req.grant_status is GrantStatus.EXPIRED:
        return f"{rid} already expired at {hhmm(req.expires_at or req.ended_at)}"
    if req.grant_status is GrantStatus.FAILED:
        return f"{rid} was approved but the grant failed ({req.note or 'see the card'})"
    if req.grant_status is GrantStatus.REVOKING:
        return f"{rid} is already being revoked (by @{req.ended_by})"
    if req.status is RequestStatus.APPROVED:
        return f"{rid} was already approved by {_people(req.approvers)} at {when}"
    if req.status is RequestStatus.DENIED:
        return f"{rid} was already denied by @{req.decided_by} at {when}"
    if req.status is RequestStatus.CANCELLED:
        return f"{rid} was already cancelled by @{req.decided_by} at {when}"
    if req.status is RequestStatus.EXPIRED:
        return f"{rid} expired at {when} without enough approvals"
    return f"{rid} is {req.status.value.lower()}"


def _pending_problem(req: Request, now: datetime) -> str | None:
    if req.status is not RequestStatus.PENDING:
        return describe_outcome(req)
    if now >= req.pending_until:
        return f"{req.request_id} expired at {hhmm(req.pending_until)} without enough approvals"
    return None


def decide_approval(req: Request, role: RoleRules | None, clicker: str | None,
                    now: datetime) -> Decision:
    if clicker is None:
        return _refuse("you are not in the Drawbridge catalog, so you cannot approve requests")
    if (problem := _pending_problem(req, now)) is not None:
        return _refuse(problem)
    if role is None:
        return _refuse(f"{req.label} is no longer in the catalog; nobody can approve {req.request_id}")
    approvers = deciders(req, role)
    if clicker not in approvers:
        return _refuse(f"you are not an approver of {req.label}; approvers: {_people(approvers)}")
    if req.requester not in role.requesters:
        # The catalog changed since the request: approve only what it still allows.
        return _refuse(f"@{req.requester} may no longer request {req.label} (the catalog changed); "
                       f"deny {req.request_id} instead")
    if clicker == req.requester and not role.self_approval:
        return _refuse(f"you cannot approve your own request ({req.label} does not allow self-approval)")
    if req.approval_by(clicker) is not None:
        return _refuse(
            f"you already approved {req.request_id} "
            f"({len(req.approvals)} of {req.approvals_required} approvals)"
        )
    # Only approvals by people who are approvers *now* count, against the stricter of the
    # rule at request time and the rule now: a catalog change never loosens a pending request.
    count = sum(1 for a in req.approvals if a.person in approvers) + 1
    required = max(req.approvals_required, role.approvals_required)
    if count >= required:
        return Decision(Outcome.APPROVED, f"final approval ({count} of {required})", count, required)
    return Decision(Outcome.COUNTED, f"approval {count} of {required}", count, required)


def decide_deny(req: Request, role: RoleRules | None, clicker: str | None,
                now: datetime) -> Decision:
    return _deny(req, role, clicker, "requests", _pending_problem(req, now), f"denied by @{clicker}",
                 deciders(req, role) if role is not None else ())


def deciders(req: Request, role: RoleRules, escalated: bool | None = None) -> tuple[str, ...]:
    """Who may decide a request: the role's approvers, and once it was escalated (``escalated``;
    None: as the record says), its fallback approvers too."""
    if escalated is None:
        escalated = req.escalated_at is not None
    fallback = tuple(getattr(role, "fallback_approvers", ())) if escalated else ()
    return tuple(role.approvers) + tuple(p for p in fallback if p not in role.approvers)


def _deny(req: Request, role: RoleRules | None, clicker: str | None, what: str, problem: str | None,
          done: str, approvers: Sequence[str] | None = None) -> Decision:
    """A Deny click (of a request, or of an extension): by an approver, while it is open."""
    if clicker is None:
        return _refuse(f"you are not in the Drawbridge catalog, so you cannot deny {what}")
    if problem is not None:
        return _refuse(problem)
    if approvers is None:
        approvers = role.approvers if role is not None else ()
    if clicker not in approvers:
        return _refuse(f"you are not an approver of {req.label}; approvers: {_people(approvers)}")
    return Decision(Outcome.DENIED, done)


def decide_revoke(req: Request, role: RoleRules | None, actor: str | None,
                  now: datetime) -> Decision:
    if actor is None:
        return _refuse("you are not in the Drawbridge catalog")
    approvers = role.approvers if role is not None else ()
    if actor != req.requester and actor not in approvers:
        return _refuse(
            f"only the requester (@{req.requester}) or an approver of {req.label} "
            f"can revoke {req.request_id}"
        )
    if req.status is RequestStatus.PENDING:
        return Decision(Outcome.CANCEL, f"cancelled by @{actor}")
    if req.grant_status is GrantStatus.ACTIVE:
        return Decision(Outcome.REVOKE, f"revoked by @{actor}")
    if req.grant_status is GrantStatus.GRANTING:
        return _refuse(f"{req.request_id} is being granted right now; try again in a moment")
    return _refuse(describe_outcome(req))


# --------------------------------------------------------------------------- requesting


class RequestableRole(RoleRules, Protocol):
    """What the request rules need from a catalog role."""

    label: str
    role_arn: str
    production: bool
    max_duration_seconds: int
    reason_required: bool


@dataclass(frozen=True)
class RequestDecision:
    allowed: bool
    reason: str  # why it is refused; empty when allowed
    seconds: int = 0  # the duration asked for, when it parsed
    #: what the refusal is about: "role", "duration" or "reason" (the request form shows it
    #: on that field); a limit on what the person holds is about the role
    about: str = ""


def _refuse_request(reason: str, about: str = "role") -> RequestDecision:
    return RequestDecision(False, reason, about=about)


def _duration(duration: str, cap: int) -> tuple[int, str | None]:
    """(seconds, None), or (0, why it is not a duration). Longer than the parser allows
    reads as ``cap + 1``, so that the refusal names the role's cap, not the parser's."""
    try:
        return parse_duration(duration), None
    except DurationTooLong:
        return cap + 1, None
    except DurationError as exc:
        return 0, str(exc)


def _held_too_many(role: RequestableRole, open_requests: Sequence[Request], max_open: int) -> str | None:
    """The per-person limits of every new request: one open request per role, ``max_open`` in all."""
    same = [r for r in open_requests if r.role_arn == role.role_arn]
    if same:
        r = same[0]
        state = f"active until {hhmm(r.expires_at)}" if r.grant_status is GrantStatus.ACTIVE else r.info.label
        return (f"you already have `{r.request_id}` for `{role.label}` ({state}); "
                f"revoke it first with `/aws-access revoke {r.request_id}`")
    if len(open_requests) >= max_open:
        return (f"you already have {len(open_requests)} pending or active requests, the most one "
                f"person may hold at once ({max_open}, IAM's managed-policy limit per user); revoke one first")
    return None


def decide_request(person: str, role: RequestableRole, *, duration: str, reason: str,
                   open_requests: Sequence[Request], max_open: int,
                   typed: tuple[str, str] | None = None) -> RequestDecision:
    """May ``person`` request ``role`` for ``duration`` with ``reason``, given the requests
    they already hold open? The same rules, in the same order, for every entry point.

    ``typed`` is the (account, role) words as the person typed them, for the example in
    the missing-reason refusal.
    """
    if person not in role.requesters:
        return _refuse_request(f"you may not request `{role.label}`; see `/aws-access help` for what you may request")
    if (blocked := approval_blocker(role, person)) is not None:
        return _refuse_request(blocked)  # nobody could ever approve it
    seconds, problem = _duration(duration, role.max_duration_seconds)
    if problem is not None:
        return _refuse_request(problem, "duration")
    if seconds > role.max_duration_seconds:
        return _refuse_request(f"{role.label} allows at most {format_duration(role.max_duration_seconds)}", "duration")
    if role.reason_required and not reason.strip():
        kind = "production requests" if role.production else f"{role.label} requests"
        account, role_word = typed or tuple(role.label.split("/", 1))
        return _refuse_request(f"{kind} need a reason: `/aws-access {account} {role_word} {duration} &lt;reason&gt;`",
                               "reason")
    if (held := _held_too_many(role, open_requests, max_open)) is not None:
        return _refuse_request(held)
    return RequestDecision(True, "", seconds)


# --------------------------------------------------------------------------- granting


class GrantableRole(RequestableRole, Protocol):
    account_id: str
    max_extended_duration_seconds: int  # read only for a grant that has been extended


class Grantee(Protocol):
    key: str
    slack_user: str

    @property
    def principal(self): ...


def _grantee_problem(req: Request, role: GrantableRole | None, person: Grantee | None) -> str | None:
    """What the catalog *now* says against the record's role and grantee (None: nothing)."""
    if role is None:
        return f"{req.label} is not in the catalog"
    if req.role_arn != role.role_arn or req.account_id != role.account_id:
        return f"the record's role {req.role_arn} is not the catalog's {role.role_arn} for {req.label}"
    if person is None or person.key != req.requester:
        return f"the requester @{req.requester} is not in the catalog"
    if person.principal != req.principal or person.slack_user != req.requester_slack:
        return f"the record's grantee {req.principal} is not @{req.requester}'s ({person.principal})"
    if req.requester not in role.requesters:
        return f"@{req.requester} may not request {req.label}"
    return None


def decide_grant(req: Request, role: GrantableRole | None, person: Grantee | None, now: datetime,
                 recorded_approvers: Sequence[str] | None = None,
                 recorded_break_glass: bool | None = None, recorded_escalation: bool | None = None) -> Decision:
    """May IAM be given what this record asks for? Re-derived from the catalog *now* and
    the recorded approvals, never from the record's fields alone: a record written to the
    table by anything but Drawbridge's own approval path must not become a grant.

    ``recorded_approvers``: the actors of the request's ``approved`` audit events (the
    history); None skips that cross-check (the alert path, which only reads).
    ``recorded_break_glass``: whether the history has the ``break_glass`` event of the
    requester (a break-glass record's only "approval"); None skips that cross-check.
    A record without ``break_glass`` is judged on its approvals alone, as it always was.
    """
    if (problem := _grantee_problem(req, role, person)) is not None:
        return _refuse(problem)
    if req.decided_at is None or req.expires_at is None:
        return _refuse("the record has no approval time or expiry")
    if not req.created_at <= req.decided_at <= now:
        return _refuse("the record's approval time is not between its creation and now")
    if req.break_glass:
        return _break_glass_grant(req, role, recorded_break_glass)
    longest = min(req.duration_seconds, role.max_duration_seconds)
    cap = role.max_duration_seconds
    if req.extended_seconds:
        # lengthened by approved extensions (decide_extension_grant judged each one)
        if req.grant_status is GrantStatus.GRANTING or req.extended_seconds < 0:
            return _refuse("the record claims extensions of a grant not made yet")
        cap = role.max_extended_duration_seconds
        longest = min(req.duration_seconds + req.extended_seconds, cap)
    if (req.expires_at - req.decided_at).total_seconds() > longest:
        return _refuse(f"the record's expiry is later than {req.label} allows "
                       f"({format_duration(cap)} from approval)")
    eligible = [a.person for a in req.approvals
                if a.person in deciders(req, role, recorded_escalation)
                and (a.person != req.requester or role.self_approval)]
    if recorded_approvers is not None:
        eligible = [p for p in eligible if p in recorded_approvers]
    required = max(req.approvals_required, role.approvals_required)
    if len(set(eligible)) < required:
        return _refuse(f"{len(set(eligible))} of {required} approvals count for {req.label} "
                       "(approvers and approvals as the catalog and the audit trail say now)")
    return Decision(Outcome.APPROVED, f"{len(set(eligible))} of {required} approvals")


# --------------------------------------------------------------------------- extending


class ExtendableRole(RequestableRole, Protocol):
    """What the extension rules need from a catalog role."""

    max_extended_duration_seconds: int
    extend_approvals: int
    self_extend: bool


def extend_approvals_needed(req: Request, role: ExtendableRole) -> int:
    """Approvals an extension needs: the stricter of the rule when it was asked and now."""
    asked = req.extension.required if req.extension is not None else 0
    return max(asked, role.extend_approvals)


def _extend_room(req: Request, role: ExtendableRole) -> int:
    """Seconds a grant may still be lengthened by: its total from approval is capped."""
    used = (req.expires_at - req.decided_at).total_seconds()
    return max(0, int(role.max_extended_duration_seconds - used))


def decide_extend(req: Request, role: ExtendableRole | None, person: str, *, duration: str, reason: str,
                  now: datetime) -> RequestDecision:
    """May ``person`` ask to lengthen grant ``req`` by ``duration``? Only its requester, while
    it is ACTIVE, one extension at a time, within the role's total cap from approval."""
    rid = req.request_id
    if person != req.requester:
        return _refuse_request(f"only the requester (@{req.requester}) can extend {rid}")
    if role is None:
        return _refuse_request(f"{req.label} is no longer in the catalog; {rid} cannot be extended")
    if req.requester not in role.requesters:
        return _refuse_request(f"you may no longer request {req.label} (the catalog changed), so {rid} "
                               "cannot be extended")
    if req.grant_status is not GrantStatus.ACTIVE or req.expires_at is None or req.decided_at is None:
        state = describe_outcome(req) if not req.is_open else f"{rid} is {req.info.label}, not active yet"
        return _refuse_request(f"only an active grant can be extended: {state}")
    if req.break_glass:
        return _refuse_request(f"{rid} is a break-glass grant, which cannot be extended; break glass again "
                               f"(`/aws-access breakglass ...`) or request {req.label} when it ends")
    if now >= req.expires_at:
        return _refuse_request(f"{rid} expired at {hhmm(req.expires_at)}; request the role again")
    ext = req.extension
    if ext is not None and ext.open:
        what = (f"waiting for approval ({len(ext.approvals)} of {ext.required})" if ext.state == ext.PENDING
                else "approved and being applied")
        return _refuse_request(f"{rid} already has an extension of {format_duration(ext.seconds)} {what}; "
                               "wait for it to be decided")
    seconds, problem = _duration(duration, role.max_extended_duration_seconds)
    if problem is not None:
        return _refuse_request(problem)
    room = _extend_room(req, role)
    if seconds > room:
        cap = format_duration(role.max_extended_duration_seconds)
        if room < 60:
            return _refuse_request(f"{req.label} grants may last at most {cap} from approval, and {rid} already "
                                   "does: it cannot be extended further; request the role again when it ends")
        return _refuse_request(f"{req.label} grants may last at most {cap} from approval (at "
                               f"{hhmm(req.decided_at)}): {rid} can be extended by at most {format_duration(room)}")
    if role.reason_required and not reason.strip():
        kind = "production extensions" if role.production else f"{req.label} extensions"
        return _refuse_request(f"{kind} need a reason: `/aws-access extend {rid} {duration} &lt;reason&gt;`")
    required = role.extend_approvals
    able = [a for a in role.approvers if a != req.requester or role.self_approval]
    if required > len(able):
        return _refuse_request(f"an extension of {req.label} needs {required} approvals and only "
                               f"{_people(able)} could give them; request the role again instead")
    return RequestDecision(True, "", seconds)


def _own_extension_counts(role: ExtendableRole) -> bool:
    """Whether a requester's click counts on their own extension: with self_approval, and in
    production only if the catalog also lets them extend alone (self_extend)."""
    return role.self_approval and (not role.production or role.self_extend)


def extension_approvers(req: Request, role: ExtendableRole) -> list[str]:
    """Who could approve this grant's extension: the role's approvers as the catalog says
    now, the requester only where their own click counts."""
    return [a for a in role.approvers if a != req.requester or _own_extension_counts(role)]


def _extension_problem(req: Request, now: datetime) -> str | None:
    ext = req.extension
    if ext is None:
        return f"{req.request_id} has no extension request"
    if req.grant_status is not GrantStatus.ACTIVE:
        return f"the extension lapsed: {describe_outcome(req)}"
    if now >= req.expires_at:
        return f"the extension lapsed: {req.request_id} expired at {hhmm(req.expires_at)}"
    if ext.state == ext.APPROVED or ext.state == ext.APPLIED:
        who = _people(ext.approvers) if ext.approvals else f"@{ext.decided_by}"
        return f"the extension of {req.request_id} was already approved by {who}"
    if ext.state == ext.DENIED:
        return f"the extension of {req.request_id} was already denied by @{ext.decided_by}"
    if ext.state != ext.PENDING:
        return f"the extension of {req.request_id} is {ext.state}"
    return None


def decide_extension_approval(req: Request, role: ExtendableRole | None, clicker: str | None,
                              now: datetime) -> Decision:
    """An approver's click on an extension: the same rules as a request's approval, against
    the role's ``extend_approvals`` (the stricter of when it was asked and now)."""
    if clicker is None:
        return _refuse("you are not in the Drawbridge catalog, so you cannot approve extensions")
    if (problem := _extension_problem(req, now)) is not None:
        return _refuse(problem)
    if role is None:
        return _refuse(f"{req.label} is no longer in the catalog; nobody can approve the extension")
    if clicker not in role.approvers:
        return _refuse(f"you are not an approver of {req.label}; approvers: {_people(role.approvers)}")
    if req.requester not in role.requesters:
        return _refuse(f"@{req.requester} may no longer request {req.label} (the catalog changed); "
                       "deny the extension instead")
    if clicker == req.requester and not _own_extension_counts(role):
        why = "does not allow self-approval" if not role.self_approval else "is production and self_extend is off"
        return _refuse(f"you cannot approve your own extension ({req.label} {why})")
    ext = req.extension
    if _extend_room(req, role) < ext.seconds:
        return _refuse(f"the extension would take {req.request_id} past the {format_duration(role.max_extended_duration_seconds)} "
                       f"{req.label} allows from approval (the catalog changed); deny it instead")
    required = extend_approvals_needed(req, role)
    if ext.approval_by(clicker) is not None:
        return _refuse(f"you already approved the extension of {req.request_id} "
                       f"({len(ext.approvals)} of {required} approvals)")
    count = sum(1 for a in ext.approvals if a.person in role.approvers) + 1
    if count >= required:
        return Decision(Outcome.APPROVED, f"final approval of the extension ({count} of {required})")
    return Decision(Outcome.COUNTED, f"extension approval {count} of {required}")


def decide_extension_deny(req: Request, role: ExtendableRole | None, clicker: str | None,
                          now: datetime) -> Decision:
    problem = _extension_problem(req, now) if clicker is not None else None
    return _deny(req, role, clicker, "extensions", problem, f"extension denied by @{clicker}")


@dataclass(frozen=True)
class ExtensionTrail:
    """What the audit trail says about a grant and its latest extension request."""

    approved_at: datetime | None  # the grant's final approval (its last ``approved`` event)
    asked_by: str | None  # the latest ``extension_requested`` event: who, when, how long
    asked_at: datetime | None
    asked_seconds: int | None
    approvers: Sequence[str]  # actors of the ``extension_approved`` events after it


def decide_extension_grant(req: Request, role: GrantableRole | None, person: Grantee | None,
                           trail: ExtensionTrail, now: datetime) -> Decision:
    """May IAM's grant be lengthened as the record's approved extension says? Re-derived from
    the catalog *now* and the audit trail (``trail``), never from the record's fields alone:
    the extension's length and who asked come from its ``extension_requested`` event, its
    approvals from the ``extension_approved`` events, the grant's approval time from its
    ``approved`` event; the old expiry is IAM's own (``Grants.extend``'s ``expected_expiry``)."""
    ext = req.extension
    if ext is None or ext.state != ext.APPROVED or ext.decided_at is None:
        return _refuse("the record has no approved extension")
    if req.grant_status is not GrantStatus.ACTIVE or req.expires_at is None or req.decided_at is None:
        return _refuse(f"{req.request_id} is {req.info.label}, not active")
    if (problem := _grantee_problem(req, role, person)) is not None:
        return _refuse(problem)
    if trail.approved_at is None or trail.approved_at != req.decided_at:
        return _refuse("the record's approval time is not the audit trail's")
    if (trail.asked_by, trail.asked_at, trail.asked_seconds) != (req.requester, ext.requested_at, ext.seconds):
        return _refuse("the extension is not the one the requester asked for in the audit trail")
    if ext.seconds <= 0:
        return _refuse("the extension adds no time")
    if not req.decided_at <= ext.requested_at <= ext.decided_at <= now or ext.decided_at >= req.expires_at:
        return _refuse("the extension was not asked and approved while the grant was in force")
    if _extend_room(req, role) < ext.seconds:
        return _refuse(f"the extension would take the grant past the "
                       f"{format_duration(role.max_extended_duration_seconds)} {req.label} allows from approval")
    required = extend_approvals_needed(req, role)
    if required == 0:
        if role.production and not role.self_extend:
            return _refuse(f"{req.label} is production and does not allow self-extension")
        return Decision(Outcome.APPROVED, "no approval needed")
    eligible = {a.person for a in ext.approvals if a.person in role.approvers
                and (a.person != req.requester or _own_extension_counts(role)) and a.person in trail.approvers}
    if len(eligible) < required:
        return _refuse(f"{len(eligible)} of {required} extension approvals count for {req.label} "
                       "(approvers and approvals as the catalog and the audit trail say now)")
    return Decision(Outcome.APPROVED, f"{len(eligible)} of {required} extension approvals")
# --------------------------------------------------------------------------- break-glass


class BreakGlassRole(RequestableRole, Protocol):
    """What the break-glass rules need from a catalog role."""

    break_glass: Sequence[str]
    break_glass_max_seconds: int
    review_within_seconds: int


#: a break-glass reason is at least a sentence: this many words and characters
BREAK_GLASS_MIN_WORDS = 3
BREAK_GLASS_MIN_CHARS = 20


def break_glass_reason_problem(reason: str) -> str | None:
    """Why ``reason`` is not enough for a break-glass grant (None: it is)."""
    text = " ".join(reason.split())
    if len(text.split()) < BREAK_GLASS_MIN_WORDS or len(text) < BREAK_GLASS_MIN_CHARS:
        return (f"break-glass needs a reason of at least a sentence ({BREAK_GLASS_MIN_WORDS} words and "
                f"{BREAK_GLASS_MIN_CHARS} characters) saying what is broken and why you cannot wait for an "
                "approval: `/aws-access breakglass &lt;account&gt; &lt;role&gt; &lt;duration&gt; &lt;reason&gt;`")
    return None


def decide_break_glass(person: str, role: BreakGlassRole, duration: str, reason: str,
                       open_requests: Sequence[Request], max_open: int) -> RequestDecision:
    """May ``person`` grant themself ``role`` for ``duration`` now, without approvals? Only
    if the catalog lists them in the role's ``break_glass`` (and ``requesters``), within
    ``break_glass_max``, with a reason of at least a sentence, and within the same limits
    as any request (one open grant per role, ``max_open`` in all)."""
    if person not in role.break_glass or person not in role.requesters:
        return _refuse_request(f"you may not use break-glass on `{role.label}`: its `break_glass` list in the "
                               "catalog does not name you. Request it with `/aws-access` instead")
    seconds, problem = _duration(duration, role.break_glass_max_seconds)
    if problem is not None:
        return _refuse_request(problem)
    if seconds > role.break_glass_max_seconds:
        return _refuse_request(f"break-glass on {role.label} allows at most "
                               f"{format_duration(role.break_glass_max_seconds)}")
    if (problem := break_glass_reason_problem(reason)) is not None:
        return _refuse_request(problem)
    if (held := _held_too_many(role, open_requests, max_open)) is not None:
        return _refuse_request(held)
    return RequestDecision(True, "", seconds)


def _break_glass_grant(req: Request, role: GrantableRole, recorded: bool | None) -> Decision:
    """The grant check of a break-glass record: what :func:`decide_break_glass` allowed,
    as the catalog says now, and the audit trail's ``break_glass`` event by the requester."""
    listed = getattr(role, "break_glass", ())
    cap = min(getattr(role, "break_glass_max_seconds", 0), role.max_duration_seconds)
    if req.requester not in listed:
        return _refuse(f"@{req.requester} may not use break-glass on {req.label}")
    if req.approvals or req.decided_by != req.requester:
        return _refuse("a break-glass record has no approvals and is decided by its requester")
    if req.duration_seconds > cap or (req.expires_at - req.decided_at).total_seconds() > cap:
        return _refuse(f"the record's expiry is later than break-glass on {req.label} allows "
                       f"({format_duration(cap)} from its use)")
    if recorded is False:
        return _refuse(f"the audit trail has no break-glass event by @{req.requester}")
    return Decision(Outcome.APPROVED, f"break-glass by @{req.requester}")


def decide_review(req: Request, role: RoleRules | None, clicker: str | None, flag_reason: str | None) -> Decision:
    """May ``clicker`` acknowledge (``flag_reason`` None) or flag this break-glass grant?
    Only an approver of the role as the catalog says now, never its requester; once."""
    if clicker is None:
        return _refuse("you are not in the Drawbridge catalog, so you cannot review break-glass use")
    if not req.break_glass:
        return _refuse(f"{req.request_id} is not a break-glass grant; there is nothing to review")
    if req.grant_status in (GrantStatus.GRANTING, GrantStatus.REVOKING):
        return _refuse(f"{req.request_id} is being {'granted' if req.grant_status is GrantStatus.GRANTING else 'revoked'}"
                       " right now; review it in a moment")
    if clicker == req.requester:
        return _refuse(f"you cannot review your own break-glass use ({req.request_id}); "
                       "an approver of the role must")
    approvers = role.approvers if role is not None else ()
    if clicker not in approvers:
        return _refuse(f"you are not an approver of {req.label}; approvers: {_people(approvers)}")
    if req.reviewed_at is not None:
        return _refuse(f"{req.request_id} was already {req.review_outcome} by @{req.reviewed_by} "
                       f"at {hhmm(req.reviewed_at)}")
    if flag_reason is not None and not flag_reason.strip():
        return _refuse("say why you flag it: type the reason in the box and press Enter")
    what = "acknowledged" if flag_reason is None else "flagged"
    return Decision(Outcome.REVIEWED, f"{what} by @{clicker}")
