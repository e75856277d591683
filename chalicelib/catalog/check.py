"""Pass 2 and the result: references between tables, then the frozen :class:`Catalog`.

Approvers and requesters exist, ids are unique, ``approvals_required`` fits the
approvers. A table that failed its shape check (pass 1, :mod:`chalicelib.catalog.shape`)
is still cross-checked on the keys that passed it, so one run shows everything.

A listed requester who can never collect enough approvals is only a warning: the
service refuses that person's request up front with
:func:`chalicelib.domain.eligibility.approval_blocker`'s reason, and one mistake in
one role must not take everyone's access tool down. With ``requesters`` absent
(every person may request), the role's own approvers being unable to approve
themselves is normal and not reported (only a role nobody at all could get is).
"""

from __future__ import annotations

from typing import Any, Sequence

from chalicelib.domain.duration import HOUR, format_duration
from chalicelib.domain.eligibility import _approvals, _either, _shortfall

from .model import Account, Catalog, CatalogError, Person, Role
from .shape import (
    ACCOUNT,
    BASTION,
    PERSON,
    RESERVED_ACCOUNT_KEYS,
    ROLE,
    SLACK,
    TOP_LEVEL,
    Fields,
    Problems,
    unknown_key,
    valid_strings,
)

#: an account that passed its shape check, and its roles that passed theirs
_Account = tuple[Fields, dict[str, Fields]]


def build(data: dict[str, Any]) -> Catalog:
    """The catalog from parsed TOML; ``CatalogError`` lists every error (and the warnings)."""
    check = Problems()
    for key in data:
        if key not in TOP_LEVEL:
            check.add(key, unknown_key(key, TOP_LEVEL))
    bastion, _ = check.fields(BASTION, data.get("bastion", {}), "bastion")
    slack, _ = check.fields(SLACK, data.get("slack", {}), "slack")
    people_table = check.table(data.get("people", {}), "people")
    people = _people(check, people_table)
    accounts_table = check.table(data.get("accounts", {}), "accounts")
    accounts: dict[str, _Account] = {}
    id_checked: dict[str, set[str]] = {}
    for key, value in accounts_table.items():
        account, bad = _account(check, key, value, people_table)
        id_checked[key] = bad
        if account:
            accounts[key] = account
    ids = valid_strings(accounts_table, "id", id_checked)
    check.unique(ids, "id", "accounts")
    for key, account_id in ids.items():
        if bastion and account_id == bastion["account_id"]:
            check.add(f"accounts.{key}.id", f"'{account_id}' is the bastion account, not a member account; "
                      "remove it from [accounts] or fix the id")
    if check.lines or bastion is None or slack is None:
        raise CatalogError(check.lines, check.warnings)
    return _resolve(bastion, slack, people, accounts, check.warnings)


def _people(check: Problems, table: dict[str, Any]) -> dict[str, Fields]:
    people: dict[str, Fields] = {}
    checked: dict[str, set[str]] = {}
    for key, value in table.items():
        check.key(key, f"people.{key}")
        if key == "drawbridge":
            check.add(f"people.{key}", "'drawbridge' is reserved: audit records use it for the service itself; "
                      "name the person otherwise")
        person, checked[key] = check.fields(PERSON, value, f"people.{key}")
        if person:
            people[key] = person
    check.unique(valid_strings(table, "slack_user", checked), "slack_user", "people")
    check.unique(valid_strings(table, "iam_user", checked), "iam_user", "people", fold=True)
    return people


def _account(
    check: Problems, key: str, value: Any, people: dict[str, Any]
) -> tuple[_Account | None, set[str]]:
    """One [accounts.X] table: (the account if valid, its keys that failed their shape check).
    Its roles are checked even when the account itself is not valid."""
    where = f"accounts.{key}"
    check.key(key, where)
    if key in RESERVED_ACCOUNT_KEYS:
        check.add(where, f"'{key}' is a command word (/aws-access {key}); name the account otherwise")
    roles_value: Any = {}
    if isinstance(value, dict) and "roles" in value:
        value = dict(value)
        roles_value = value.pop("roles")
    account, bad = check.fields(ACCOUNT, value, where, extra_keys=["roles"])
    production = isinstance(value, dict) and value.get("production") is True
    roles: dict[str, Fields] = {}
    names: dict[str, str] = {}
    for rkey, rvalue in check.table(roles_value, f"{where}.roles").items():
        rwhere = f"{where}.roles.{rkey}"
        check.key(rkey, rwhere)
        role, rbad = check.fields(ROLE, rvalue, rwhere)
        if role is None:
            continue
        if not rbad:
            roles[rkey] = role
        if "role_name" not in rbad:
            names[rkey] = _resolved_name(rkey, role)
        _check_role(check, rwhere, role, rbad, production, people)
        _check_extend(check, rwhere, role, rbad, production, people)
        _check_break_glass(check, rwhere, role, rbad, people)
        if "fallback_approvers" in role.given and "fallback_approvers" not in rbad:
            check.people_list(role["fallback_approvers"], f"{rwhere}.fallback_approvers", people, groups=True)
    check.unique(names, "role_name", f"{where}.roles", fold=True)
    return ((account, roles) if account and not bad else None), bad


def _check_role(
    check: Problems, where: str, role: Fields, bad: set[str], production: bool, people: dict[str, Any]
) -> None:
    """Listed people exist, the approvals can be collected, and every listed requester
    could be approved (a warning if not). Keys in ``bad`` failed their shape check and
    are left out, but every check that does not depend on them still runs."""
    approvers = None if "approvers" in bad else \
        check.people_list(role["approvers"], f"{where}.approvers", people, groups=True)
    requesters: list[str] | None = None  # None: every person (the default), or not known
    if "requesters" in role.given:
        requesters = check.people_list(role["requesters"], f"{where}.requesters", people)
        if not requesters:
            check.add(f"{where}.requesters", "is empty, so nobody may request this role; "
                      "remove the key to let every person request it")
    if approvers is None:
        return
    if not approvers:
        why = "a production role nobody can approve" if production else "nobody could approve any request"
        check.add(f"{where}.approvers",
                  f'no approvers: {why}; list at least one person, e.g. approvers = ["bob"]')
        return
    if production:
        for handle in [a for a in approvers if a.startswith("@")]:
            check.warn(f"{where}.approvers", f"names the Slack user group {handle}: whoever may edit it in Slack "
                       "decides who approves production access; restrict user group editing to workspace "
                       "admins, or name people (docs/SECURITY.md)")
    if "approvals_required" in bad or has_group(approvers):
        return  # a user group's size is known only at click time: its members may supply them
    needed = role["approvals_required"]
    if needed > len(approvers):
        check.add(f"{where}.approvals_required",
                  f"is {needed} but there {'is' if len(approvers) == 1 else 'are'} only "
                  f"{plural(len(approvers), 'approver')}; lower it or add approvers")
        return
    if "requesters" in bad or "self_approval" in bad:
        return
    if requesters is not None:
        listed = role["requesters"]
        for i, requester in enumerate(listed):
            if requester not in people or requester in listed[:i]:
                continue  # already an error
            short = _shortfall(approvers, needed, role["self_approval"], requester)
            if short is not None:
                eligible, fixes = short
                check.warn(f"{where}.requesters[{i}]", _never_approved(requester, needed, eligible, approvers)
                           + f"; {_either([*fixes, f'remove {requester!r} from requesters'])}")
    elif people and all(_shortfall(approvers, needed, role["self_approval"], p) for p in people):
        # Every person is an approver, and nobody may approve their own request.
        _, fixes = _shortfall(approvers, needed, role["self_approval"], approvers[0]) or ([], [])
        check.warn(where, f"nobody can ever be approved for it: it needs {_approvals(needed)} and every "
                   f"person is one of its approvers, who may not approve their own requests; "
                   f"{_either(fixes)}")


def _check_extend(
    check: Problems, where: str, role: Fields, bad: set[str], production: bool, people: dict[str, Any]
) -> None:
    """``max_extended_duration``, ``extend_approvals`` and ``self_extend`` (issue 16).

    An extension's approvals follow the approvals_required rule: more than the role has
    approvers is an error; a listed requester who could be approved but never extended is
    a warning (with ``requesters`` absent, only if nobody who could be approved could)."""
    given = role.given
    if "max_extended_duration" in given and "max_duration" not in bad:
        longest, most = role["max_extended_duration"], role["max_duration"]
        if longest < most:
            check.add(f"{where}.max_extended_duration",
                      f"is {format_duration(longest)}, shorter than max_duration ({format_duration(most)}), "
                      f"so no extension could ever be granted; set it to at least {format_duration(most)} "
                      "or remove it (default: max_duration)")
    if "extend_approvals" in bad or ("extend_approvals" not in given and "approvals_required" in bad):
        return
    needed = _extend_approvals(role)
    if "self_extend" not in bad and role["self_extend"] and needed > 0:
        why = f"is {needed}" if "extend_approvals" in given else f"defaults to approvals_required ({needed})"
        check.warn(f"{where}.self_extend",
                   f"has no effect: extend_approvals {why}, so extensions need approvals anyway; "
                   "remove it, or set extend_approvals = 0 to let the requester extend alone")
    if "extend_approvals" not in given:
        return  # the same as approvals_required, checked already
    if needed == 0:
        if production and "self_extend" not in bad and not role["self_extend"]:
            check.add(f"{where}.extend_approvals",
                      "is 0 in a production account, so a requester would extend their own grant without "
                      "anyone's approval; require at least 1 approval, or set self_extend = true to allow it")
        return
    if "approvers" in bad or has_group(role["approvers"]):
        return  # a user group's size is known only at click time
    approvers = [a for a in dict.fromkeys(role["approvers"]) if a in people]
    if not approvers:
        return  # already an error
    if needed > len(approvers):
        check.add(f"{where}.extend_approvals",
                  f"is {needed} but there {'is' if len(approvers) == 1 else 'are'} only "
                  f"{plural(len(approvers), 'approver')}; lower it or add approvers")
        return
    if "requesters" in bad or "self_approval" in bad or "approvals_required" in bad:
        return
    self_approval, required = role["self_approval"], role["approvals_required"]

    def never_extended(person: str) -> tuple[list[str], list[str]] | None:
        """(who could approve their extension, fixes) if they could be approved but never extended."""
        if _shortfall(approvers, required, self_approval, person) is not None:
            return None  # never approved at all: warned about at requesters, if listed
        short = _shortfall(approvers, needed, self_approval, person)
        if short is None:
            return None
        eligible, fixes = short
        return eligible, [f.replace("approvals_required", "extend_approvals") for f in fixes]

    if "requesters" in given:
        for person in dict.fromkeys(p for p in role["requesters"] if p in people):
            short = never_extended(person)
            if short is not None:
                eligible, fixes = short
                names = ", ".join(eligible) or "none"
                check.warn(f"{where}.extend_approvals",
                           f"'{person}' can be approved but never extended: an extension needs "
                           f"{_approvals(needed)} and only {len(eligible)} of its approvers ({names}) may "
                           f"approve {person}'s; {_either(fixes)}")
        return
    approvable = [p for p in people if _shortfall(approvers, required, self_approval, p) is None]
    if approvable and all(never_extended(p) for p in approvable):
        _, fixes = never_extended(approvable[0]) or ([], [])
        check.warn(f"{where}.extend_approvals",
                   f"nobody can ever extend it: an extension needs {_approvals(needed)} and everyone who "
                   f"can be approved for it is one of its approvers, who may not approve their own; "
                   f"{_either(fixes)}")


def _check_break_glass(check: Problems, where: str, role: Fields, bad: set[str], people: dict[str, Any]) -> None:
    """``break_glass`` and ``break_glass_max`` (issue 16); ``review_within`` needs only its shape."""
    given = role.given
    if "break_glass" in given:
        listed = role["break_glass"]
        check.people_list(listed, f"{where}.break_glass", people)
        if "requesters" in given and "requesters" not in bad:
            for i, person in enumerate(listed):
                if person in people and person not in listed[:i] and person not in role["requesters"]:
                    check.add(f"{where}.break_glass[{i}]",
                              f"'{person}' may not request this role, so may not break glass into it either; "
                              f"add '{person}' to requesters or remove them from break_glass")
    if "break_glass_max" in given:
        longest = role["break_glass_max"]
        if "max_duration" not in bad and longest > role["max_duration"]:
            most = format_duration(role["max_duration"])
            check.add(f"{where}.break_glass_max",
                      f"is {format_duration(longest)}, longer than max_duration ({most}), and a break-glass "
                      f"grant may not outlast an approved one; lower it to at most {most} or raise max_duration")
        if "break_glass" not in bad and not role["break_glass"]:
            check.warn(f"{where}.break_glass_max",
                       "has no effect: break_glass lists nobody; remove it, or list in break_glass "
                       "who may self-grant this role in an emergency")


def has_group(approvers: Sequence[str]) -> bool:
    """Whether a list of approvers names a Slack user group (``@handle``)."""
    return any(a.startswith("@") for a in approvers)


def _extend_approvals(raw: Fields) -> int:
    return raw["extend_approvals"] if "extend_approvals" in raw.given else raw["approvals_required"]


def _never_approved(person: str, needed: int, eligible: list[str], approvers: list[str]) -> str:
    """Why a listed requester can never be approved, said about them (for the validator)."""
    head = f"'{person}' can never be approved: the role needs {_approvals(needed)}"
    if person in approvers and not eligible:
        return f"{head} and {person} is its only approver"
    if person in approvers:
        names = ", ".join(eligible)
        return f"{head} and only {len(eligible)} of its approvers ({names}) may approve {person}'s request"
    return f"{head} but has only {plural(len(eligible), 'approver')}"


def plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


def _resolved_name(key: str, role: Fields) -> str:
    return role["role_name"] if "role_name" in role.given else key


def _resolve(
    bastion: Fields,
    slack: Fields,
    people: dict[str, Fields],
    accounts: dict[str, _Account],
    warnings: Sequence[str] = (),
) -> Catalog:
    everyone = tuple(sorted(people))

    def role(key: str, account_key: str, account: Fields, raw: Fields) -> Role:
        return Role(
            key=key,
            account_key=account_key,
            account_id=account["id"],
            production=account["production"],
            role_name=_resolved_name(key, raw),
            max_duration_seconds=raw["max_duration"],
            approvers=tuple(raw["approvers"]),
            approvals_required=raw["approvals_required"],
            requesters=tuple(raw["requesters"]) if "requesters" in raw.given else everyone,
            self_approval=raw["self_approval"],
            reason_required=raw["reason_required"] if "reason_required" in raw.given else account["production"],
            max_extended_duration_seconds=(
                raw["max_extended_duration"] if "max_extended_duration" in raw.given else raw["max_duration"]
            ),
            extend_approvals=_extend_approvals(raw),
            self_extend=raw["self_extend"],
            break_glass=tuple(raw["break_glass"]),
            break_glass_max_seconds=(
                raw["break_glass_max"] if "break_glass_max" in raw.given else min(HOUR, raw["max_duration"])
            ),
            review_within_seconds=raw["review_within"],
            remind_after_seconds=raw["remind_after"],
            escalate_after_seconds=raw["escalate_after"],
            fallback_approvers=tuple(raw["fallback_approvers"]),
        )

    return Catalog(
        bastion_account_id=bastion["account_id"],
        approvals_channel=slack["approvals_channel"],
        security_channel=slack["security_channel"],
        slack_team_id=slack["team_id"],
        slack_app_id=slack["app_id"],
        people={
            k: Person(key=k, slack_user=p["slack_user"], iam_user=p["iam_user"], mfa_serial=p["mfa_serial"])
            for k, p in people.items()
        },
        accounts={
            akey: Account(
                key=akey,
                id=account["id"],
                production=account["production"],
                roles={rkey: role(rkey, akey, account, raw) for rkey, raw in roles.items()},
            )
            for akey, (account, roles) in accounts.items()
        },
        warnings=tuple(warnings),
    )
