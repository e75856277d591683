"""Session cut-offs: ending a person's role sessions when their grant ends (pure rendering).

A grant stops new ``sts:AssumeRole`` calls at its end, but a role session issued before
the end keeps working until it expires (up to the role's MaxSessionDuration,
``MAX_SESSION``). To end those sessions too, Drawbridge keeps, in a customer-managed
policy attached to each JIT role (``drawbridge-session-cutoffs-<RoleName>``), one deny
per person whose grant ended::

    Deny * on * when aws:userid          = <role unique id>:<session name>   (StringEquals)
                 and aws:TokenIssueTime  < <end of the grant, next second>   (DateLessThan)

This module renders that document and merges new cut-offs into the one already there.
It makes no AWS call; the caller reads the policy's default version, calls :func:`merge`
and, only when ``changed``, writes the result as the new default version.

Why matching on ``aws:userid`` cuts that person and nobody else
    For a role session ``aws:userid`` is ``<role unique id>:<role session name>``. The
    unique id (``AROA…``) is fixed when the role is created and never reused, so the
    cut-off cannot reach another role, nor a later role recreated under the same name.
    The role's trust policy (policies/member-account.yaml) only lets a bastion user
    assume it with ``sts:RoleSessionName`` equal to their own IAM user name
    (``${aws:username}``), and IAM user names are unique in the bastion account and
    cannot contain ``*`` or ``?``: the session name is the person. Other people's
    sessions on the same role never match.

Why ``aws:TokenIssueTime < end`` cuts every session of the ended grant and no later one
    The grant allows AssumeRole only while ``aws:CurrentTime`` is before ``expires_at``, so
    no session issued under it has an issue time at or after the expiry. A session the
    same person starts under a *later* grant is issued after the end and is not denied.
    The end must therefore be the last moment IAM could still honour the grant:

    * expiry: ``expires_at`` (IAM enforces it itself; the sweep's ``ended_at`` is later
      and would cut the person's next grant needlessly, never more safely);
    * revoke or drift repair: the grant works until its policy is detached *and* IAM has
      stopped honouring it. ``Request.ended_at`` records when the revoke was asked, which
      is earlier, so a session started in between would escape the cut-off. Use
      :func:`grant_end` with the time the detach succeeded: it adds ``IAM_SETTLE`` for
      propagation and never goes past ``expires_at``. The price: a new grant to the same
      person on the same role within that ``IAM_SETTLE`` works only for sessions issued
      after the bound (its DM says from when).

    The deny is on the session, not on the grant: a person holding two grants on the same
    role at once (overlapping) loses the sessions of both when one ends; they can assume
    the role again under the other.

Rounding
    The bound written is the second *after* the end's second (``floor(end) + 1 s``), so a
    session issued in the same second as the end is cut whatever precision IAM keeps for
    the issue time. The cost is that the same person's new session issued in that same
    second under a later grant is cut too.

Clean-up
    A cut-off is dead once every session it targets has expired: ``bound + max_session <=
    now``. :func:`merge` drops dead ones, so the document only holds the last hour or so.

Budget (measured with :func:`iam_size`, whitespace excluded, for a 21-character role id
``AROA`` + 17, request ids like ``req-20261112-0a11ce`` and 12-character user names)
    * the document wrapper (``Version`` + ``Statement``): 39 characters
    * one per-person statement: 216 characters, 217 with the comma between statements:
      6,144 characters hold **28** per-person cut-offs
    * people sharing an end second share one statement: 256 characters for two people,
      37 more for each other one (the userid in the list). All in one second: **160**
      people; N people in each second: N = 2: 23 seconds, **46** people; N = 5: 16 seconds,
      **80** people (and one more alone) (about 6,106 / (220 + 37 (N - 1)) seconds)
    * the role-wide fallback statement: 194 characters
    (tests/unit/test_cutoff.py::test_measured_sizes keeps these figures honest)

Over budget
    When the per-person statements, even merged by end second, do not fit, the earliest
    ending cut-offs are folded into one role-wide cut-off: ``Deny *`` for every session of
    the role (``StringLike aws:userid "<role id>:*"``) issued before the latest end among
    them. It still cuts every person folded into it (their sessions were all issued before
    that end), and also other people's sessions issued before it: they must assume the
    role again. ``Merged.fallback`` says it happened so the caller can tell #security.
    A live cut-off is never dropped: it is in its own statement, or its person's later
    cut-off, or the role-wide one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .domain.model import iso_z, parse_iso, utc
from .domain.timing import IAM_SETTLE, MAX_SESSION
from .policy import MANAGED_POLICY_MAX_CHARS, iam_size

#: IAM path and name of the cut-off policy attached to each JIT role
CUTOFF_POLICY_PATH = "/drawbridge/"
CUTOFF_POLICY_PREFIX = "drawbridge-session-cutoffs-"
#: a managed policy keeps at most 5 versions; the writer deletes the oldest non-default first
MAX_POLICY_VERSIONS = 5

SID_PREFIX = "Cut"
_MERGED_SID = SID_PREFIX + "At"
ROLE_WIDE_SID = SID_PREFIX + "RoleWide"
_USERID = "aws:userid"
_ISSUED = "aws:TokenIssueTime"
_VERSION = "2012-10-17"
#: the statement of a document with no cut-off (IAM refuses an empty statement list):
#: denies sessions issued before 1970, which no session is
EMPTY_STATEMENT = {
    "Sid": SID_PREFIX + "None", "Effect": "Deny", "Action": "*", "Resource": "*",
    "Condition": {"DateLessThan": {_ISSUED: "1970-01-01T00:00:00Z"}},
}
#: characters IAM allows in a role's unique id and in an IAM user (= session) name
_ROLE_ID = re.compile(r"[A-Z0-9]+")
_SESSION = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_ALNUM = re.compile(r"[^A-Za-z0-9]")
_SECOND = timedelta(seconds=1)


def cutoff_policy_name(role_name: str) -> str:
    return f"{CUTOFF_POLICY_PREFIX}{role_name}"


def grant_end(expires_at: datetime, detached_at: datetime | None = None,
              settle: timedelta = IAM_SETTLE) -> datetime:
    """The last moment IAM may still honour a grant: its expiry, or, when it was removed
    earlier (revoke, drift repair), the time the detach succeeded plus propagation."""
    expires_at = utc(expires_at)
    if detached_at is None:
        return expires_at
    return min(expires_at, utc(detached_at) + settle)


def bound_of(end: datetime) -> datetime:
    """The ``aws:TokenIssueTime`` bound for an end: the start of the next second."""
    return utc(end).replace(microsecond=0) + _SECOND


@dataclass(frozen=True)
class CutOff:
    """Deny the sessions of ``<role_id>:<session_name>`` issued before ``end``.

    ``session_name == "*"`` is the role-wide fallback (every session of the role).
    ``request_id`` names the statement; read back from a document it is the Sid's
    alphanumeric form, or ``""`` when the statement held several people.
    """

    role_id: str
    session_name: str
    end: datetime
    request_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "end", utc(self.end))
        if not _ROLE_ID.fullmatch(self.role_id):
            raise ValueError(f"not a role unique id: {self.role_id!r}")
        if self.session_name != "*" and not _SESSION.fullmatch(self.session_name):
            raise ValueError(f"not a role session name: {self.session_name!r}")

    @property
    def userid(self) -> str:
        return f"{self.role_id}:{self.session_name}"

    @property
    def bound(self) -> datetime:
        return bound_of(self.end)

    @property
    def role_wide(self) -> bool:
        return self.session_name == "*"

    def dead(self, now: datetime, max_session: timedelta = MAX_SESSION) -> bool:
        """Every session it targets has expired on its own."""
        return self.bound + max_session <= utc(now)


def statement_id(request_id: str) -> str:
    """``Cut`` + the request id's letters and digits (IAM Sids are alphanumeric)."""
    return SID_PREFIX + _ALNUM.sub("", request_id)


def cutoff_statement(cut: CutOff, sid: str | None = None) -> dict:
    """One person's cut-off."""
    return _deny(sid or statement_id(cut.request_id or cut.session_name), "StringEquals", cut.userid, cut.bound)


def shared_statement(cuts: list[CutOff]) -> dict:
    """Several people whose cut-offs end in the same second (one statement, a userid list)."""
    bound = cuts[0].bound
    if any(c.bound != bound for c in cuts):
        raise ValueError("cut-offs in one statement must share their end second")
    return _deny(_MERGED_SID + _compact(bound), "StringEquals", sorted({c.userid for c in cuts}), bound)


def role_wide_statement(role_ids: list[str], end: datetime) -> dict:
    """Every session of the role(s) issued before ``end`` (the over-budget fallback)."""
    patterns = [f"{r}:*" for r in sorted(set(role_ids))]
    return _deny(ROLE_WIDE_SID, "StringLike", patterns, bound_of(end))


def document(statements: list[dict]) -> dict:
    return {"Version": _VERSION, "Statement": statements or [dict(EMPTY_STATEMENT)]}


def _deny(sid: str, operator: str, userids: str | list[str], bound: datetime) -> dict:
    if isinstance(userids, list) and len(userids) == 1:
        userids = userids[0]
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {operator: {_USERID: userids}, "DateLessThan": {_ISSUED: iso_z(bound)}},
    }


def _compact(bound: datetime) -> str:
    return _ALNUM.sub("", iso_z(bound))  # 20261112T160216Z


# -- reading a document back ------------------------------------------------------------


def parse(doc: dict | None) -> tuple[list[CutOff], list[dict]]:
    """The cut-offs a document written by this module holds, and the statements it could
    not read. A role-wide statement gives one ``CutOff(role_id, "*", …)`` per role id;
    read-back ends are ``bound - 1 s`` so that rendering them again gives the same bound."""
    cuts: list[CutOff] = []
    unreadable: list[dict] = []
    statements = (doc or {}).get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return [], [{"Statement": statements}]
    for st in statements:
        if st == EMPTY_STATEMENT:
            continue
        read = _read(st)
        if read is None:
            unreadable.append(st)
        else:
            cuts.extend(read)
    return cuts, unreadable


def _read(st: object) -> list[CutOff] | None:
    if not isinstance(st, dict) or set(st) != {"Sid", "Effect", "Action", "Resource", "Condition"}:
        return None
    sid, cond = st["Sid"], st["Condition"]
    if (st["Effect"], st["Action"], st["Resource"]) != ("Deny", "*", "*") or not isinstance(sid, str) \
            or not sid.startswith(SID_PREFIX) or not isinstance(cond, dict) or len(cond) != 2:
        return None
    when = cond.get("DateLessThan")
    operator = "StringLike" if "StringLike" in cond else "StringEquals"
    who = cond.get(operator)
    if not isinstance(when, dict) or set(when) != {_ISSUED} or not isinstance(who, dict) or set(who) != {_USERID}:
        return None
    ids = who[_USERID] if isinstance(who[_USERID], list) else [who[_USERID]]
    try:
        bound = parse_iso(when[_ISSUED])
        if iso_z(bound) != when[_ISSUED] or not ids:
            return None
        end = bound - _SECOND
        out = []
        for userid in ids:
            role_id, sep, session = userid.partition(":")
            if not sep or (operator == "StringLike") != (session == "*"):
                return None
            request_id = sid[len(SID_PREFIX):] if len(ids) == 1 and operator == "StringEquals" else ""
            out.append(CutOff(role_id, session, end, request_id))
        return out
    except (TypeError, ValueError, AttributeError):
        return None


# -- merging ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Merged:
    """The next cut-off document and what happened to each cut-off."""

    document: dict
    #: differs from the existing document: write it (as a new default version); else do nothing
    changed: bool
    #: the live cut-offs, one per person (a person's earlier cut-off is absorbed by their
    #: later one, which denies a superset), whether in their own statement or folded into
    #: the role-wide one
    kept: tuple[CutOff, ...]
    #: the subset of ``kept`` enforced only by the role-wide cut-off
    folded: tuple[CutOff, ...]
    #: dead cut-offs removed (every session they target has expired)
    pruned: tuple[CutOff, ...]
    #: the role-wide cut-off in the document (one per role id), if any
    role_wide: tuple[CutOff, ...]
    #: the role-wide cut-off was added or moved later by this merge: tell #security
    fallback: bool
    #: statements of the existing document that were not cut-offs this module writes (dropped)
    unreadable: tuple[dict, ...]


def merge(existing: dict | None, new: list[CutOff], now: datetime, max_session: timedelta = MAX_SESSION,
          budget: int = MANAGED_POLICY_MAX_CHARS) -> Merged:
    """The document holding every live cut-off of ``existing`` and ``new``, within ``budget``."""
    old, unreadable = parse(existing)
    candidates = old + list(new)
    pruned = [c for c in candidates if c.dead(now, max_session)]
    live = [c for c in candidates if not c.dead(now, max_session)]

    wide = [c for c in live if c.role_wide]
    prev_bound = max((c.bound for c in wide), default=None)
    prev_ids = {c.role_id for c in wide}
    latest: dict[str, CutOff] = {}
    for c in live:
        if not c.role_wide and (c.userid not in latest or c.bound > latest[c.userid].bound):
            latest[c.userid] = c  # the first seen wins a tie: merging what is there changes nothing
    people = sorted(latest.values(), key=lambda c: (c.bound, c.userid))

    # fold as few as possible (k earliest ends) into the role-wide cut-off; for each k, own
    # statements before shared ones. Read back, the result is chosen again: idempotent.
    for k, shared in [(k, shared) for k in range(len(people) + 1) for shared in (False, True)]:
        ids = prev_ids | {c.role_id for c in people[:k]}
        bound = max([b for b in [prev_bound] + [c.bound for c in people[:k]] if b is not None], default=None)
        folded = [c for c in people if bound is not None and c.bound <= bound and c.role_id in ids]
        rest = [c for c in people if c not in folded]
        statements = [role_wide_statement(sorted(ids), bound - _SECOND)] if bound is not None else []
        statements += _statements(rest, shared, taken={ROLE_WIDE_SID})
        doc = document(statements)
        if iam_size(doc) <= budget:
            break
    else:
        raise ValueError(f"a budget of {budget} characters cannot hold even the role-wide cut-off")

    role_wide = tuple(CutOff(r, "*", bound - _SECOND) for r in sorted(ids)) if bound is not None else ()
    return Merged(
        document=doc,
        changed=doc != existing,
        kept=tuple(people),
        folded=tuple(folded),
        pruned=tuple(pruned),
        role_wide=role_wide,
        fallback=bound is not None and (bound, ids) != (prev_bound, prev_ids),
        unreadable=tuple(unreadable),
    )


def _statements(people: list[CutOff], shared: bool, taken: set[str]) -> list[dict]:
    """Per-person statements in (end, userid) order; with ``shared``, one per end second."""
    out: list[dict] = []
    if shared:
        groups: dict[datetime, list[CutOff]] = {}
        for c in people:
            groups.setdefault(c.bound, []).append(c)
        for group in groups.values():
            out.append(cutoff_statement(group[0]) if len(group) == 1 else shared_statement(group))
    else:
        out = [cutoff_statement(c) for c in people]
    seen = set(taken)
    for st in out:  # Sids must be unique in a policy (request ids differing only in punctuation)
        sid, n = st["Sid"], 1
        while st["Sid"] in seen:
            n += 1
            st["Sid"] = f"{sid}N{n}"
        seen.add(st["Sid"])
    return out


def enforced(doc: dict | None, cut: CutOff) -> bool:
    """Whether ``doc`` denies every session ``cut`` targets: a statement for the same userid
    (or the role-wide one, for the same role) whose bound is at or after ``cut``'s."""
    held, _ = parse(doc)
    return any(c.role_id == cut.role_id and c.bound >= cut.bound
               and (c.role_wide or c.session_name == cut.session_name) for c in held)
