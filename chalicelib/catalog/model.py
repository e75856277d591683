"""The catalog's public values: frozen dataclasses and their lookups (stdlib only).

Only :func:`chalicelib.catalog.check.build` makes them, from a file that passed every
check, so they carry no validation of their own. Lists are tuples; the dicts are
never changed after construction (nothing here or in the service mutates them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Collection, Mapping, Sequence

from chalicelib.domain.duration import format_duration
from chalicelib.domain.eligibility import approval_blocker
from chalicelib.domain.model import Principal


class CatalogError(Exception):
    """The catalog cannot be used.

    ``problems`` are the errors, ``"dotted.key: problem; how to fix"`` lines;
    ``warnings`` are the warnings found in the same run (same format), for the validator.
    """

    def __init__(self, problems: list[str], warnings: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        self.warnings = tuple(warnings)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, kw_only=True)
class Person:
    key: str
    slack_user: str
    iam_user: str
    mfa_serial: str | None = None  # named in the DM's CLI profile; default: looked up in IAM

    @property
    def principal(self) -> Principal:
        """Who receives this person's grants in the bastion (an IAM user today)."""
        return Principal.iam_user(self.iam_user)


@dataclass(frozen=True, kw_only=True)
class Role:
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
    # Issue 16 (extend, break-glass): checked and resolved (defaults filled in).
    #: longest a grant may last in total from its approval once extended (>= max_duration)
    max_extended_duration_seconds: int
    #: approvals an extension needs; 0: the requester extends alone
    extend_approvals: int
    #: allows extend_approvals = 0 in a production account
    self_extend: bool
    #: person keys who may self-grant this role in an emergency
    break_glass: tuple[str, ...]
    #: longest break-glass grant (<= max_duration)
    break_glass_max_seconds: int
    #: how soon the role's approvers must acknowledge a break-glass use
    review_within_seconds: int
    #: the first reminder of the approvers while a request waits (then 2x, 4x...); None: none
    remind_after_seconds: int | None = 600
    #: when a waiting request is escalated (posted in the approvals channel, and
    #: fallback_approvers may approve it too); None: never
    escalate_after_seconds: int | None = 1800
    #: person keys who may approve once a request is escalated
    fallback_approvers: tuple[str, ...] = ()
    #: set by :meth:`with_members` only: the user groups Slack could not resolve (they supplied nobody)
    unresolved_groups: tuple[str, ...] = ()

    @property
    def groups(self) -> tuple[str, ...]:
        """The Slack user group handles among its approvers and fallback approvers (``@sre-leads``)."""
        return tuple(dict.fromkeys(a for a in (*self.approvers, *self.fallback_approvers) if a.startswith("@")))

    def with_members(self, members: Mapping[str, Collection[str]]) -> "Role":
        """This role with each user group handle replaced by the person keys ``members`` says
        are in it (a handle missing from ``members`` supplies nobody: fail closed). Repeats
        are dropped, the order kept: the people listed by name first where they are listed."""

        def expand(entries: Sequence[str]) -> tuple[str, ...]:
            out: list[str] = []
            for entry in entries:
                out.extend(sorted(members.get(entry, ())) if entry.startswith("@") else [entry])
            return tuple(dict.fromkeys(out))

        if not self.groups:
            return self
        return replace(self, approvers=expand(self.approvers), fallback_approvers=expand(self.fallback_approvers),
                       unresolved_groups=tuple(h for h in self.groups if h not in members))

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.role_name}"

    @property
    def label(self) -> str:
        return f"{self.account_key}/{self.key}"

    @property
    def max_duration(self) -> str:
        return format_duration(self.max_duration_seconds)

    @property
    def max_extended_duration(self) -> str:
        return format_duration(self.max_extended_duration_seconds)


@dataclass(frozen=True, kw_only=True)
class Account:
    key: str
    id: str
    production: bool
    roles: dict[str, Role]


@dataclass(frozen=True, kw_only=True)
class Catalog:
    bastion_account_id: str
    approvals_channel: str
    security_channel: str
    people: dict[str, Person]
    accounts: dict[str, Account]
    #: the one Slack workspace and app requests must come from (checked when set)
    slack_team_id: str | None = None
    slack_app_id: str | None = None
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


def _names(table: dict[str, Any]) -> str:
    return ", ".join(sorted(table)) or "none"
