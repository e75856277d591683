"""The access catalog: ``policies/access.toml`` loaded and validated into frozen models.

Who may request which role, who approves it, for how long. The file format and
every rule are documented in docs/CATALOG.md; ``python -m chalicelib.catalog
[path]`` checks a file. Nothing here reads the environment: callers pass the path.

Loading happens in two passes, so one run reports every problem at once:

1. shape: each table is checked on its own by a strict private pydantic model
   (unknown keys, missing keys, types, id formats, durations);
2. references: approvers/requesters exist, ids are unique, every requester can
   actually be approved.

Only a catalog without problems becomes a :class:`Catalog`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from chalicelib.domain.duration import DAY, HOUR, DurationError, format_duration, parse_duration

DEFAULT_PATH = "policies/access.toml"
MAX_ROLE_DURATION = 7 * DAY


class CatalogError(Exception):
    """The catalog cannot be used. ``problems`` are ``"dotted.key: problem"`` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- public models


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Person(_Frozen):
    key: str
    slack_user: str
    iam_user: str


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
        return [r for r in self.roles() if person_key in r.requesters]


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
        raise ValueError(str(exc)) from None
    if seconds > MAX_ROLE_DURATION:
        raise ValueError(f"'{value}' is too long; at most {format_duration(MAX_ROLE_DURATION)}")
    return seconds


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, not {value}")
    return value


_AccountId = Annotated[str, BeforeValidator(_account_id)]
_ChannelId = _matching(_SLACK_CHANNEL, "'{value}' is not a Slack channel id (like C0APPROVE1)")
_SlackUser = _matching(_SLACK_USER, "'{value}' is not a Slack user id (like U0ALICE001, not a name)")
_IamUser = _matching(_IAM_USER, "'{value}' is not an IAM user name (1-64 of letters, digits, +=,.@_-)")


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


def _dotted(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".")


class _Problems:
    """Collects ``"dotted.key: problem"`` lines while the catalog is checked."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.lines.append(f"{where}: {problem}")

    def model(self, model: type[_Raw], value: Any, where: str) -> Any:
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            for error in exc.errors():
                if error["type"] == "value_error":
                    problem = str(error["ctx"]["error"])
                else:
                    problem = _TYPE_PROBLEMS.get(error["type"], error["msg"])
                self.add(_dotted(where, error["loc"]), problem)
            return None

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
                self.add(f"{table}.{key}.{field}", f"'{value}' is also the {field} of {table}.{seen[norm]}")
            else:
                seen[norm] = key

    def people_list(self, keys: list[str], where: str, people: dict[str, Any]) -> list[str]:
        """Report unknown and repeated person keys; return the list without repeats."""
        listed: list[str] = []
        for i, key in enumerate(keys):
            if key not in people:
                self.add(f"{where}[{i}]", f"'{key}' is not a person in [people]")
            elif key in listed:
                self.add(f"{where}[{i}]", f"'{key}' is listed twice")
            if key not in listed:
                listed.append(key)
        return listed


# --------------------------------------------------------------------------- references (pass 2)


def _check_role(
    check: _Problems, where: str, role: _RawRole, production: bool, people: dict[str, Any]
) -> None:
    """Listed people exist, and every requester can collect enough approvals."""
    approvers = check.people_list(role.approvers, f"{where}.approvers", people)
    requesters = list(people)
    if "requesters" in role.model_fields_set:
        requesters = check.people_list(role.requesters, f"{where}.requesters", people)
        if not requesters:
            check.add(f"{where}.requesters", "is empty, so nobody may request this role; "
                      "remove the key to let every person request it")
    if not approvers:
        why = "a production role nobody can approve" if production else "nobody could approve any request"
        check.add(f"{where}.approvers", f"no approvers: {why}")
        return
    needed = role.approvals_required
    if needed > len(approvers):
        check.add(f"{where}.approvals_required", f"is {needed} but there are only {len(approvers)} approvers")
        return
    for requester in requesters:
        eligible = [a for a in approvers if a != requester or role.self_approval]
        if len(eligible) < needed:
            plural = "s" if needed > 1 else ""
            names = ", ".join(eligible) or "none"
            check.add(where, f"requester '{requester}' can never be approved "
                      f"(needs {needed} approval{plural}; eligible approvers: {names})")


_Account = tuple[_RawAccount, dict[str, _RawRole]]


def _build(data: dict[str, Any]) -> Catalog:
    check = _Problems()
    for key in data:
        if key not in _TOP_LEVEL:
            check.add(key, "unknown key")
    bastion = check.model(_RawBastion, data.get("bastion", {}), "bastion")
    slack = check.model(_RawSlack, data.get("slack", {}), "slack")
    people_table = check.table(data.get("people", {}), "people")
    people = _people(check, people_table)
    accounts: dict[str, _Account] = {}
    for key, value in check.table(data.get("accounts", {}), "accounts").items():
        if account := _account(check, key, value, people_table):
            accounts[key] = account
    check.unique({k: a.id for k, (a, _) in accounts.items()}, "id", "accounts")
    for key, (account, _) in accounts.items():
        if bastion and account.id == bastion.account_id:
            check.add(f"accounts.{key}.id", f"'{account.id}' is the bastion account, not a member account")
    if check.lines:
        raise CatalogError(check.lines)
    return _resolve(bastion, slack, people, accounts)


def _people(check: _Problems, table: dict[str, Any]) -> dict[str, _RawPerson]:
    people: dict[str, _RawPerson] = {}
    for key, value in table.items():
        check.key(key, f"people.{key}")
        if key == "drawbridge":
            check.add(f"people.{key}", "'drawbridge' is reserved: audit records use it for the service itself")
        if person := check.model(_RawPerson, value, f"people.{key}"):
            people[key] = person
    check.unique({k: p.slack_user for k, p in people.items()}, "slack_user", "people")
    check.unique({k: p.iam_user for k, p in people.items()}, "iam_user", "people", fold=True)
    return people


def _account(check: _Problems, key: str, value: Any, people: dict[str, Any]) -> _Account | None:
    """One [accounts.X] table; its roles are checked even when the account itself is not valid."""
    where = f"accounts.{key}"
    check.key(key, where)
    if key in RESERVED_ACCOUNT_KEYS:
        check.add(where, f"'{key}' is a command word (/aws-access {key}); name the account otherwise")
    roles_value: Any = {}
    if isinstance(value, dict) and "roles" in value:
        value = dict(value)
        roles_value = value.pop("roles")
    account = check.model(_RawAccount, value, where)
    production = bool(account and account.production)
    roles: dict[str, _RawRole] = {}
    for rkey, rvalue in check.table(roles_value, f"{where}.roles").items():
        rwhere = f"{where}.roles.{rkey}"
        check.key(rkey, rwhere)
        if role := check.model(_RawRole, rvalue, rwhere):
            roles[rkey] = role
            _check_role(check, rwhere, role, production, people)
        else:  # still name the unknown people in whichever lists are well-formed
            for field in ("approvers", "requesters"):
                listed = rvalue.get(field) if isinstance(rvalue, dict) else None
                if isinstance(listed, list) and all(isinstance(k, str) for k in listed):
                    check.people_list(listed, f"{rwhere}.{field}", people)
    names = {k: _resolved_name(k, r) for k, r in roles.items()}
    check.unique(names, "role_name", f"{where}.roles", fold=True)
    return (account, roles) if account else None


def _resolved_name(key: str, role: _RawRole) -> str:
    return role.role_name if "role_name" in role.model_fields_set else key


def _resolve(
    bastion: _RawBastion,
    slack: _RawSlack,
    people: dict[str, _RawPerson],
    accounts: dict[str, _Account],
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
        people={k: Person(key=k, slack_user=p.slack_user, iam_user=p.iam_user) for k, p in people.items()},
        accounts={
            akey: Account(
                key=akey,
                id=account.id,
                production=account.production,
                roles={rkey: role(rkey, akey, account, raw) for rkey, raw in roles.items()},
            )
            for akey, (account, roles) in accounts.items()
        },
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
        return 1
    roles = catalog.roles()
    production = sum(r.production for r in roles)
    print(
        f"OK: {args.path}: {len(catalog.people)} people, {len(catalog.accounts)} accounts, "
        f"{len(roles)} roles ({production} production)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
