"""The access catalog: ``policies/access.toml`` loaded and validated into frozen models.

Who may request which role, who approves it, for how long. The file format and
every rule are documented in docs/CATALOG.md; ``python -m chalicelib.catalog
[path]`` checks a file. Nothing here reads the environment: callers pass the path.

Loading happens in two passes, so one run reports every problem at once:

1. shape: each table is checked on its own by a strict private pydantic model
   (unknown keys, missing keys, types, id formats, durations);
2. references: approvers/requesters exist, ids are unique, approvals_required
   fits the approvers. A table that fails its shape check is still cross-checked
   on the keys that passed it, so one run shows everything.

Problems are errors (the catalog is refused, :class:`CatalogError`) or warnings
(the catalog loads, :attr:`Catalog.warnings`). A listed requester who can never
collect enough approvals is only a warning: the service refuses that person's
request up front with :func:`approval_blocker`'s reason, and one mistake in one
role must not take everyone's access tool down. With ``requesters`` absent
(every person may request), the role's own approvers being unable to approve
themselves is normal and not reported (only a role nobody at all could get is).

Only a catalog without errors becomes a :class:`Catalog`.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Sequence

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from chalicelib.domain.eligibility import _approvals, _either, _shortfall, approval_blocker  # noqa: F401 (re-exported)
from chalicelib.domain.duration import DAY, HOUR, DurationError, format_duration, parse_duration

DEFAULT_PATH = "policies/access.toml"
MAX_ROLE_DURATION = 7 * DAY


class CatalogError(Exception):
    """The catalog cannot be used.

    ``problems`` are the errors, ``"dotted.key: problem; how to fix"`` lines;
    ``warnings`` are the warnings found in the same run (same format), for the validator.
    """

    def __init__(self, problems: list[str], warnings: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        self.warnings = tuple(warnings)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- public models


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Person(_Frozen):
    key: str
    slack_user: str
    iam_user: str
    mfa_serial: str | None = None  # named in the DM's CLI profile; default: looked up in IAM


class Role(_Frozen):
    key: str
    account_key: str
    account_id: str
    production: bool
    role_name: str
    max_duration_seconds: int
    approvers: tuple[str, ...]
    approvals_required: int
    requesters: tuple[str, ...]
    self_approval: bool
    reason_required: bool

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.role_name}"

    @property
    def label(self) -> str:
        return f"{self.account_key}/{self.key}"

    @property
    def max_duration(self) -> str:
        return format_duration(self.max_duration_seconds)


class Account(_Frozen):
    key: str
    id: str
    production: bool
    roles: dict[str, Role]


class Catalog(_Frozen):
    bastion_account_id: str
    approvals_channel: str
    security_channel: str
    people: dict[str, Person]
    accounts: dict[str, Account]
    #: ``"dotted.key: problem; how to fix"`` lines that did not stop the catalog loading
    warnings: tuple[str, ...] = ()

    def person_by_slack(self, slack_user: str) -> Person | None:
        return next((p for p in self.people.values() if p.slack_user == slack_user), None)

    def person_by_iam_user(self, iam_user: str) -> Person | None:
        """IAM user names are unique case-insensitively, so they match that way."""
        wanted = iam_user.lower()
        return next((p for p in self.people.values() if p.iam_user.lower() == wanted), None)

    def account_by_id(self, account_id: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.id == account_id), None)

    def find_role(self, account_key: str, role_key: str) -> Role:
        """The role a user named; ``LookupError`` with a message fit for Slack."""
        account = self.accounts.get(account_key.lower())
        if account is None:
            raise LookupError(f"unknown account '{account_key}'; accounts: {_names(self.accounts)}")
        role = account.roles.get(role_key.lower())
        if role is None:
            raise LookupError(f"unknown role '{role_key}' in {account.key}; roles: {_names(account.roles)}")
        return role

    def role_by_arn(self, role_arn: str) -> Role | None:
        return next((r for r in self.roles() if r.role_arn == role_arn), None)

    def roles(self) -> list[Role]:
        """Every role, sorted by label."""
        found = [r for a in self.accounts.values() for r in a.roles.values()]
        return sorted(found, key=lambda r: r.label)

    def requestable_by(self, person_key: str) -> list[Role]:
        """Roles ``person_key`` may request *and* could get approved, sorted by label.

        A role that lists them among its requesters but whose approvers could never
        approve them (see :func:`approval_blocker`) is left out, so ``help`` never
        offers a role that cannot be granted.
        """
        return [
            r for r in self.roles() if person_key in r.requesters and approval_blocker(r, person_key) is None
        ]


# --------------------------------------------------------------------------- who can be approved


def _names(table: dict[str, Any]) -> str:
    return ", ".join(sorted(table)) or "none"


# --------------------------------------------------------------------------- file shape (pass 1)

_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: first words of the command grammar; an account so named could never be requested
RESERVED_ACCOUNT_KEYS = frozenset({"help", "list", "revoke"})
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,}")
_IAM_USER = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_IAM_ROLE_PATH = re.compile(r"[\w+=,.@/-]+", re.ASCII)


def _matching(pattern: re.Pattern[str], problem: str) -> Any:
    """A string type that must fully match ``pattern``; ``problem`` may use {value}."""

    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(problem.format(value=value))
        return value

    return Annotated[str, AfterValidator(check)]


def _account_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(
            f'must be a string: write "{value}" in quotes (a TOML number loses leading zeros)'
        )
    if isinstance(value, str) and not _ACCOUNT_ID.fullmatch(value):
        raise ValueError(f"'{value}' is not a 12-digit AWS account id")
    return value


def _role_name(value: str) -> str:
    segments = value.split("/")
    if not _IAM_ROLE_PATH.fullmatch(value) or not all(segments):
        raise ValueError(
            f"'{value}' is not an IAM role name: letters, digits and +=,.@_- only, "
            "optionally after a path like ops/admin"
        )
    if len(segments[-1]) > 64:
        raise ValueError(f"'{segments[-1]}' is longer than 64 characters, the IAM limit")
    return value


def _max_duration(value: Any) -> int:
    if not isinstance(value, str):
        raise ValueError('must be a duration in quotes, e.g. "4h"')
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        problem = str(exc)
        if "use e.g." not in problem and "at most" not in problem:
            problem += "; use e.g. 30m, 2h, 1h30m or 1d"
        raise ValueError(problem) from None
    if seconds > MAX_ROLE_DURATION:
        raise ValueError(f"'{value}' is too long; at most {format_duration(MAX_ROLE_DURATION)}")
    return seconds


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, not {value}")
    return value


_AccountId = Annotated[str, BeforeValidator(_account_id)]
_ChannelId = _matching(
    _SLACK_CHANNEL,
    "'{value}' is not a Slack channel id (like C0APPROVE1); "
    "copy it from the bottom of the channel's About tab, not the #name",
)
_SlackUser = _matching(
    _SLACK_USER,
    "'{value}' is not a Slack user id (like U0ALICE001, not a name); "
    "copy it from the person's Slack profile: Copy member ID",
)
_IamUser = _matching(_IAM_USER, "'{value}' is not an IAM user name (1-64 of letters, digits, +=,.@_-)")
#: what IAM accepts as an MFA SerialNumber: a device ARN, or a hardware token's serial
_MFA_SERIAL = re.compile(r"[\w+=/:,.@-]{9,256}", re.ASCII)
_MfaSerial = _matching(
    _MFA_SERIAL,
    "'{value}' is not an MFA device serial; use the device ARN, like "
    "arn:aws:iam::111111111111:mfa/alice (aws iam list-mfa-devices --user-name <user>), or remove the key",
)


class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RawBastion(_Raw):
    account_id: _AccountId


class _RawSlack(_Raw):
    approvals_channel: _ChannelId
    security_channel: _ChannelId


class _RawPerson(_Raw):
    slack_user: _SlackUser
    iam_user: _IamUser
    mfa_serial: _MfaSerial | None = None


class _RawAccount(_Raw):  # its [roles] table is checked role by role
    id: _AccountId
    production: bool = False


class _RawRole(_Raw):  # "was it given?" is model_fields_set, for defaults that depend on context
    role_name: Annotated[str, AfterValidator(_role_name)] = ""
    max_duration: Annotated[int, BeforeValidator(_max_duration)] = HOUR
    approvers: list[str] = []
    approvals_required: Annotated[int, AfterValidator(_at_least_one)] = 1
    requesters: list[str] = []
    self_approval: bool = False
    reason_required: bool = False


_TOP_LEVEL = ("bastion", "slack", "people", "accounts")
_TYPE_PROBLEMS = {
    "extra_forbidden": "unknown key",
    "missing": "missing required key",
    "string_type": "must be a string (in quotes)",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
}
#: what to write for a missing required key
_EXAMPLES = {
    "account_id": '"111111111111"',
    "approvals_channel": '"C0APPROVE1"',
    "security_channel": '"C0SECURIT1"',
    "slack_user": '"U0ALICE001"',
    "iam_user": '"alice"',
    "id": '"222222222222"',
}


def _dotted(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".")


def _unknown_key(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key; remove it (keys here: {', '.join(known)})"


def _plural(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else plural or singular + 's'}"


class _Problems:
    """Collects ``"dotted.key: problem; how to fix"`` lines while the catalog is checked:
    errors (``lines``) and warnings."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.lines.append(f"{where}: {problem}")

    def warn(self, where: str, problem: str) -> None:
        self.warnings.append(f"{where}: {problem}")

    def model(
        self, model: type[_Raw], value: Any, where: str, extra_keys: Sequence[str] = ()
    ) -> tuple[Any, set[str]]:
        """Validate one table: (the model or None, the names of its keys that failed).

        When only some keys fail, the model is built again from the keys that passed
        (absent ones taking their defaults) if it can be, so the cross-checks still
        run on them; callers must not trust the failed keys' defaults.
        """
        try:
            return model.model_validate(value), set()
        except ValidationError as exc:
            errors = exc.errors()
        known = [*model.model_fields, *extra_keys]
        for error in errors:
            if error["type"] == "value_error":
                problem = str(error["ctx"]["error"])
            elif error["type"] == "extra_forbidden":
                problem = _unknown_key(str(error["loc"][-1]), known)
            elif error["type"] == "missing" and (name := error["loc"][-1]) in _EXAMPLES:
                problem = f"missing required key; add e.g. {name} = {_EXAMPLES[name]}"
            else:
                problem = _TYPE_PROBLEMS.get(error["type"], error["msg"])
            self.add(_dotted(where, error["loc"]), problem)
        if not isinstance(value, dict):
            return None, set()
        bad = {str(e["loc"][0]) for e in errors if e["loc"]}
        try:
            return model.model_validate({k: v for k, v in value.items() if k not in bad}), bad
        except ValidationError:  # a required key failed: no model, but say which keys are usable
            return None, bad

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        self.add(where, "must be a table")
        return {}

    def key(self, key: str, where: str) -> None:
        if not _KEY.fullmatch(key):
            self.add(where, f"'{key}' is not a valid key: 1-32 of a-z 0-9 - _, starting with a-z or 0-9")

    def unique(self, values: dict[str, str], field: str, table: str, fold: bool = False) -> None:
        """Report each ``table.<key>.<field>`` whose value an earlier key already has."""
        seen: dict[str, str] = {}
        for key, value in values.items():
            norm = value.lower() if fold else value
            if norm in seen:
                self.add(f"{table}.{key}.{field}",
                         f"'{value}' is also the {field} of {table}.{seen[norm]}; each must have its own")
            else:
                seen[norm] = key

    def people_list(self, keys: list[str], where: str, people: dict[str, Any]) -> list[str]:
        """Report unknown and repeated person keys; return the list without repeats."""
        listed: list[str] = []
        for i, key in enumerate(keys):
            if key not in people:
                self.add(f"{where}[{i}]",
                         f"'{key}' is not a person in [people]; add [people.{key}] or fix the name")
            elif key in listed:
                self.add(f"{where}[{i}]", f"'{key}' is listed twice; remove the repeat")
            if key not in listed:
                listed.append(key)
        return listed


def _valid_strings(table: dict[str, Any], field: str, checked: dict[str, set[str]]) -> dict[str, str]:
    """``{key: table[key][field]}`` for the entries whose ``field`` passed its shape check.

    Only for fields whose validated value is the raw string (ids and names)."""
    return {
        key: value[field]
        for key, value in table.items()
        if key in checked and field not in checked[key] and isinstance(value, dict)
        and isinstance(value.get(field), str)
    }


# --------------------------------------------------------------------------- references (pass 2)


def _check_role(
    check: _Problems, where: str, role: _RawRole, bad: set[str], production: bool, people: dict[str, Any]
) -> None:
    """Listed people exist, the approvals can be collected, and every listed requester
    could be approved (a warning if not). Keys in ``bad`` failed their shape check and
    are left out, but every check that does not depend on them still runs."""
    approvers = None if "approvers" in bad else check.people_list(role.approvers, f"{where}.approvers", people)
    requesters: list[str] | None = None  # None: every person (the default), or not known
    if "requesters" in role.model_fields_set:
        requesters = check.people_list(role.requesters, f"{where}.requesters", people)
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
    if "approvals_required" in bad:
        return
    needed = role.approvals_required
    if needed > len(approvers):
        check.add(f"{where}.approvals_required",
                  f"is {needed} but there {'is' if len(approvers) == 1 else 'are'} only "
                  f"{_plural(len(approvers), 'approver')}; lower it or add approvers")
        return
    if "requesters" in bad or "self_approval" in bad:
        return
    if requesters is not None:
        for i, requester in enumerate(role.requesters):
            if requester not in people or requester in role.requesters[:i]:
                continue  # already an error
            short = _shortfall(approvers, needed, role.self_approval, requester)
            if short is not None:
                eligible, fixes = short
                check.warn(f"{where}.requesters[{i}]", _never_approved(requester, needed, eligible, approvers)
                           + f"; {_either([*fixes, f'remove {requester!r} from requesters'])}")
    elif people and all(_shortfall(approvers, needed, role.self_approval, p) for p in people):
        # Every person is an approver, and nobody may approve their own request.
        _, fixes = _shortfall(approvers, needed, role.self_approval, approvers[0]) or ([], [])
        check.warn(where, f"nobody can ever be approved for it: it needs {_approvals(needed)} and every "
                   f"person is one of its approvers, who may not approve their own requests; "
                   f"{_either(fixes)}")


def _never_approved(person: str, needed: int, eligible: list[str], approvers: list[str]) -> str:
    """Why a listed requester can never be approved, said about them (for the validator)."""
    head = f"'{person}' can never be approved: the role needs {_approvals(needed)}"
    if person in approvers and not eligible:
        return f"{head} and {person} is its only approver"
    if person in approvers:
        names = ", ".join(eligible)
        return f"{head} and only {len(eligible)} of its approvers ({names}) may approve {person}'s request"
    return f"{head} but has only {_plural(len(eligible), 'approver')}"


def _build(data: dict[str, Any]) -> Catalog:
    check = _Problems()
    for key in data:
        if key not in _TOP_LEVEL:
            check.add(key, _unknown_key(key, _TOP_LEVEL))
    bastion, _ = check.model(_RawBastion, data.get("bastion", {}), "bastion")
    slack, _ = check.model(_RawSlack, data.get("slack", {}), "slack")
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
    ids = _valid_strings(accounts_table, "id", id_checked)
    check.unique(ids, "id", "accounts")
    for key, account_id in ids.items():
        if bastion and account_id == bastion.account_id:
            check.add(f"accounts.{key}.id", f"'{account_id}' is the bastion account, not a member account; "
                      "remove it from [accounts] or fix the id")
    if check.lines:
        raise CatalogError(check.lines, check.warnings)
    return _resolve(bastion, slack, people, accounts, check.warnings)


def _people(check: _Problems, table: dict[str, Any]) -> dict[str, _RawPerson]:
    people: dict[str, _RawPerson] = {}
    checked: dict[str, set[str]] = {}
    for key, value in table.items():
        check.key(key, f"people.{key}")
        if key == "drawbridge":
            check.add(f"people.{key}", "'drawbridge' is reserved: audit records use it for the service itself; "
                      "name the person otherwise")
        person, checked[key] = check.model(_RawPerson, value, f"people.{key}")
        if person:
            people[key] = person
    check.unique(_valid_strings(table, "slack_user", checked), "slack_user", "people")
    check.unique(_valid_strings(table, "iam_user", checked), "iam_user", "people", fold=True)
    return people


_Account = tuple[_RawAccount, dict[str, _RawRole]]


def _account(
    check: _Problems, key: str, value: Any, people: dict[str, Any]
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
    account, bad = check.model(_RawAccount, value, where, extra_keys=["roles"])
    production = isinstance(value, dict) and value.get("production") is True
    roles: dict[str, _RawRole] = {}
    names: dict[str, str] = {}
    for rkey, rvalue in check.table(roles_value, f"{where}.roles").items():
        rwhere = f"{where}.roles.{rkey}"
        check.key(rkey, rwhere)
        role, rbad = check.model(_RawRole, rvalue, rwhere)
        if role is None:
            continue
        if not rbad:
            roles[rkey] = role
        if "role_name" not in rbad:
            names[rkey] = _resolved_name(rkey, role)
        _check_role(check, rwhere, role, rbad, production, people)
    check.unique(names, "role_name", f"{where}.roles", fold=True)
    return ((account, roles) if account and not bad else None), bad


def _resolved_name(key: str, role: _RawRole) -> str:
    return role.role_name if "role_name" in role.model_fields_set else key


def _resolve(
    bastion: _RawBastion,
    slack: _RawSlack,
    people: dict[str, _RawPerson],
    accounts: dict[str, _Account],
    warnings: Sequence[str] = (),
) -> Catalog:
    everyone = tuple(sorted(people))

    def role(key: str, account_key: str, account: _RawAccount, raw: _RawRole) -> Role:
        given = raw.model_fields_set
        return Role(
            key=key,
            account_key=account_key,
            account_id=account.id,
            production=account.production,
            role_name=_resolved_name(key, raw),
            max_duration_seconds=raw.max_duration,
            approvers=tuple(raw.approvers),
            approvals_required=raw.approvals_required,
            requesters=tuple(raw.requesters) if "requesters" in given else everyone,
            self_approval=raw.self_approval,
            reason_required=raw.reason_required if "reason_required" in given else account.production,
        )

    return Catalog(
        bastion_account_id=bastion.account_id,
        approvals_channel=slack.approvals_channel,
        security_channel=slack.security_channel,
        people={k: Person(key=k, slack_user=p.slack_user, iam_user=p.iam_user, mfa_serial=p.mfa_serial) for k, p in people.items()},
        accounts={
            akey: Account(
                key=akey,
                id=account.id,
                production=account.production,
                roles={rkey: role(rkey, akey, account, raw) for rkey, raw in roles.items()},
            )
            for akey, (account, roles) in accounts.items()
        },
        warnings=tuple(warnings),
    )


# --------------------------------------------------------------------------- entry points


def parse_catalog(text: str, source: str = "<catalog>") -> Catalog:
    """Validate catalog TOML text; ``CatalogError`` lists every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError([f"{source}: TOML syntax error: {exc}"]) from None
    return _build(data)


_cache: dict[str, tuple[tuple[int, int], Catalog]] = {}


def load_catalog(path: str | os.PathLike[str]) -> Catalog:
    """Load a catalog file; parsed again only when its mtime or size changes."""
    resolved = str(Path(path).resolve())
    try:
        stat = os.stat(resolved)
        stamp = (stat.st_mtime_ns, stat.st_size)
        cached = _cache.get(resolved)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        raw = Path(resolved).read_bytes()
    except OSError as exc:
        raise CatalogError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CatalogError([f"{path}: not UTF-8 text"]) from None
    catalog = parse_catalog(text, source=str(path))
    _cache[resolved] = (stamp, catalog)
    return catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.catalog", description="Validate a Drawbridge access catalog."
    )
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH, help=f"default: {DEFAULT_PATH}")
    args = parser.parse_args(argv)
    try:
        catalog = load_catalog(args.path)
    except CatalogError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        for warning in exc.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        return 1
    for warning in catalog.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    roles = catalog.roles()
    production = sum(r.production for r in roles)
    summary = (
        f"OK: {args.path}: {_plural(len(catalog.people), 'person', 'people')}, "
        f"{_plural(len(catalog.accounts), 'account')}, {_plural(len(roles), 'role')} ({production} production)"
    )
    if catalog.warnings:
        summary += f", {_plural(len(catalog.warnings), 'warning')}"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
