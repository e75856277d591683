"""Pass 1: each table of the file on its own (stdlib only).

Every table has a spec: its keys in order, each with a check and a default (or
none: required). :meth:`Problems.fields` checks one table against its spec and
reports *every* problem in it, in the spec's key order and then the unknown keys,
each as ``"dotted.key: problem; how to fix"``; the keys that passed still come
back, so pass 2 (:mod:`chalicelib.catalog.check`) cross-checks them.

A check returns the value to keep or raises :class:`Invalid` with the problem, or
with several problems at list items (``approvers[1]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from chalicelib.domain.duration import DAY, HOUR, DurationError, format_duration, parse_duration

MAX_ROLE_DURATION = 7 * DAY
#: first words of the command grammar, including the ones issues 16 and 18 add (extend,
#: breakglass, activity, review); an account so named could never be requested
RESERVED_ACCOUNT_KEYS = frozenset({"help", "list", "revoke", "extend", "breakglass", "activity", "review"})

_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,}")
#: a Slack user group's handle as an approver, ``@sre-leads`` (what Slack allows in a handle)
GROUP_HANDLE = re.compile(r"@[a-z0-9._-]{1,80}")
_IAM_USER = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
_IAM_ROLE_PATH = re.compile(r"[\w+=,.@/-]+", re.ASCII)
#: what IAM accepts as an MFA SerialNumber: a device ARN, or a hardware token's serial
_MFA_SERIAL = re.compile(r"[\w+=/:,.@-]{9,256}", re.ASCII)

_NOT_A_STRING = "must be a string (in quotes)"


class Invalid(ValueError):
    """A value failed its check: ``problems`` are (where below the key, problem) pairs."""

    def __init__(self, problem: str = "", *, items: Sequence[tuple[str, str]] = ()) -> None:
        self.problems = list(items) or [("", problem)]
        super().__init__(problem)


# --------------------------------------------------------------------------- value checks


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid(_NOT_A_STRING)
    return value


def _matching(pattern: re.Pattern[str], problem: str) -> Callable[[Any], str]:
    """A string that must fully match ``pattern``; ``problem`` may use {value}."""

    def check(value: Any) -> str:
        if not pattern.fullmatch(_string(value)):
            raise Invalid(problem.format(value=value))
        return value

    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid("must be true or false")
    return value


def _at_least_one(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid("must be a whole number")
    if value < 1:
        raise Invalid(f"must be at least 1, not {value}")
    return value


def _at_least_zero(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid("must be a whole number")
    if value < 0:
        raise Invalid(f"must be 0 or more, not {value}")
    return value


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise Invalid("must be a list")
    bad = [(f"[{i}]", _NOT_A_STRING) for i, item in enumerate(value) if not isinstance(item, str)]
    if bad:
        raise Invalid(items=bad)
    return value


def _account_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise Invalid(f'must be a string: write "{value}" in quotes (a TOML number loses leading zeros)')
    if isinstance(value, str) and not _ACCOUNT_ID.fullmatch(value):
        raise Invalid(f"'{value}' is not a 12-digit AWS account id")
    return _string(value)


def _role_name(value: Any) -> str:
    segments = _string(value).split("/")
    if not _IAM_ROLE_PATH.fullmatch(value) or not all(segments):
        raise Invalid(
            f"'{value}' is not an IAM role name: letters, digits and +=,.@_- only, "
            "optionally after a path like ops/admin"
        )
    if len(segments[-1]) > 64:
        raise Invalid(f"'{segments[-1]}' is longer than 64 characters, the IAM limit")
    return value


def _max_duration(value: Any) -> int:
    """A duration in quotes, kept as seconds."""
    if not isinstance(value, str):
        raise Invalid('must be a duration in quotes, e.g. "4h"')
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        problem = str(exc)
        if "use e.g." not in problem and "at most" not in problem:
            problem += "; use e.g. 30m, 2h, 1h30m or 1d"
        raise Invalid(problem) from None
    if seconds > MAX_ROLE_DURATION:
        raise Invalid(f"'{value}' is too long; at most {format_duration(MAX_ROLE_DURATION)}")
    return seconds


_channel_id = _matching(
    _SLACK_CHANNEL,
    "'{value}' is not a Slack channel id (like C0APPROVE1); "
    "copy it from the bottom of the channel's About tab, not the #name",
)

# --------------------------------------------------------------------------- the tables

_REQUIRED = object()


@dataclass(frozen=True)
class Key:
    name: str
    check: Callable[[Any], Any]
    default: Any = _REQUIRED  # lists are copied, never shared


def _duration_or_off(value: Any) -> int | None:
    """A duration in quotes, or "off"."""
    if value == "off":
        return None
    try:
        return _max_duration(value)
    except Invalid as exc:
        raise Invalid(f'{exc}; or "off" for none') from None


#: what to write for a missing required key
_EXAMPLES = {
    "account_id": '"111111111111"',
    "approvals_channel": '"C0APPROVE1"',
    "security_channel": '"C0SECURIT1"',
    "slack_user": '"U0ALICE001"',
    "iam_user": '"alice"',
    "id": '"222222222222"',
}

TOP_LEVEL = ("bastion", "slack", "people", "accounts")
BASTION = (Key("account_id", _account_id),)
_team_id = _matching(
    re.compile(r"[TE][A-Z0-9]{2,}"),
    "'{value}' is not a Slack workspace id (like T0TEAM0001); find it in the workspace's "
    "admin pages or in any request Slack sends (team_id)",
)
_app_id = _matching(
    re.compile(r"A[A-Z0-9]{2,}"),
    "'{value}' is not a Slack app id (like A0EXAMPLE01); copy it from the app's Basic Information page",
)
SLACK = (Key("approvals_channel", _channel_id), Key("security_channel", _channel_id),
         Key("team_id", _team_id, None), Key("app_id", _app_id, None))
PERSON = (
    Key("slack_user", _matching(
        _SLACK_USER,
        "'{value}' is not a Slack user id (like U0ALICE001, not a name); "
        "copy it from the person's Slack profile: Copy member ID",
    )),
    Key("iam_user", _matching(_IAM_USER, "'{value}' is not an IAM user name (1-64 of letters, digits, +=,.@_-)")),
    Key("mfa_serial", _matching(
        _MFA_SERIAL,
        "'{value}' is not an MFA device serial; use the device ARN, like "
        "arn:aws:iam::111111111111:mfa/alice (aws iam list-mfa-devices --user-name <user>), or remove the key",
    ), None),
)
ACCOUNT = (Key("id", _account_id), Key("production", _bool, False))  # its [roles] are checked role by role
ROLE = (
    Key("role_name", _role_name, ""),
    Key("max_duration", _max_duration, HOUR),
    Key("approvers", _strings, []),
    Key("approvals_required", _at_least_one, 1),
    Key("requesters", _strings, []),
    Key("self_approval", _bool, False),
    Key("reason_required", _bool, False),
    # Issue 16 (extend, break-glass). None: the role's own value (max_duration,
    # approvals_required), filled in by check.py.
    Key("max_extended_duration", _max_duration, None),
    Key("extend_approvals", _at_least_zero, None),
    Key("self_extend", _bool, False),
    Key("break_glass", _strings, []),
    Key("break_glass_max", _max_duration, HOUR),  # or max_duration if shorter (check.py)
    Key("review_within", _max_duration, DAY),
    # Issue 17: reminders of approvers while a request waits ("off": none)
    Key("remind_after", _duration_or_off, 10 * 60),
    # ... and escalation: after escalate_after, fallback_approvers may approve too
    Key("escalate_after", _duration_or_off, 30 * 60),
    Key("fallback_approvers", _strings, []),
)


class Fields:
    """One table that passed (at least in part): ``self[key]`` is the value given if it
    passed its check, else the key's default; ``given`` names the keys given that passed."""

    def __init__(self, values: dict[str, Any], given: frozenset[str]) -> None:
        self._values = values
        self.given = given

    def __getitem__(self, key: str) -> Any:
        return self._values[key]


# --------------------------------------------------------------------------- collecting problems


def unknown_key(key: str, known: Sequence[str]) -> str:
    import difflib  # only when there is a problem to report

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    return f"unknown key; remove it (keys here: {', '.join(known)})"


class Problems:
    """Collects ``"dotted.key: problem; how to fix"`` lines while the catalog is checked:
    errors (``lines``) and warnings."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def add(self, where: str, problem: str) -> None:
        self.lines.append(f"{where}: {problem}")

    def warn(self, where: str, problem: str) -> None:
        self.warnings.append(f"{where}: {problem}")

    def fields(
        self, spec: Sequence[Key], value: Any, where: str, extra_keys: Sequence[str] = ()
    ) -> tuple[Fields | None, set[str]]:
        """Check one table: (its fields or None, the names of its keys that failed).

        Every problem is reported: each key's, in ``spec`` order, then each unknown key.
        The fields come back unless the value is not a table or a required key is
        missing or failed; callers must not trust the failed keys' defaults.
        """
        if not isinstance(value, dict):
            self.add(where, "must be a table")
            return None, set()
        values: dict[str, Any] = {}
        bad: set[str] = set()
        for key in spec:
            if key.name not in value:
                if key.default is _REQUIRED:
                    example = _EXAMPLES.get(key.name)
                    self.add(f"{where}.{key.name}", "missing required key"
                             + (f"; add e.g. {key.name} = {example}" if example else ""))
                    bad.add(key.name)
                else:
                    values[key.name] = list(key.default) if isinstance(key.default, list) else key.default
                continue
            try:
                values[key.name] = key.check(value[key.name])
            except Invalid as exc:
                bad.add(key.name)
                for below, problem in exc.problems:
                    self.add(f"{where}.{key.name}{below}", problem)
        known = [key.name for key in spec]
        for name in value:
            if name not in known:
                self.add(f"{where}.{name}", unknown_key(name, [*known, *extra_keys]))
                bad.add(name)
        if any(key.default is _REQUIRED and key.name not in values for key in spec):
            return None, bad
        return Fields(values, frozenset(k for k in value if k in values)), bad

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

    def people_list(self, keys: list[str], where: str, people: dict[str, Any], groups: bool = False) -> list[str]:
        """Report unknown and repeated person keys; return the list without repeats.

        ``groups``: an entry starting with ``@`` is a Slack user group handle (approvers,
        fallback_approvers): only its syntax can be checked here, its members are known
        only when Slack is asked (at click time)."""
        listed: list[str] = []
        for i, key in enumerate(keys):
            if groups and key.startswith("@"):
                if not GROUP_HANDLE.fullmatch(key):
                    self.add(f"{where}[{i}]", f"'{key}' is not a Slack user group handle: @ then 1-80 of "
                             "a-z 0-9 . _ - (the handle as Slack shows it, like @sre-leads, not the group's name)")
                elif key in listed:
                    self.add(f"{where}[{i}]", f"'{key}' is listed twice; remove the repeat")
            elif key not in people:
                self.add(f"{where}[{i}]",
                         f"'{key}' is not a person in [people]; add [people.{key}] or fix the name")
            elif key in listed:
                self.add(f"{where}[{i}]", f"'{key}' is listed twice; remove the repeat")
            if key not in listed:
                listed.append(key)
        return listed


def valid_strings(table: dict[str, Any], field: str, checked: dict[str, set[str]]) -> dict[str, str]:
    """``{key: table[key][field]}`` for the entries whose ``field`` passed its shape check.

    Only for fields whose checked value is the string as given (ids and names)."""
    return {
        key: value[field]
        for key, value in table.items()
        if key in checked and field not in checked[key] and isinstance(value, dict)
        and isinstance(value.get(field), str)
    }
