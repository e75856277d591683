"""``python -m bench.models``: pydantic vs msgspec vs stdlib dataclasses, measured (issue #11 item 10).

The figures behind docs/decisions/0005-model-library.md. For each library:

* **cold import**: the library as Drawbridge would import it (pydantic: the names
  chalicelib imported from it), in a fresh interpreter;
* **catalog**: import + define the catalog's models (strict private table models and
  the public frozen ones) + read ``policies/access.toml`` and validate it into them;
* **domain round trip**: import + define a Request-like record (datetimes, two
  enums, a tuple of approvals) + build one, dump it to JSON and parse it back, once,
  in a fresh process (the round trip alone is reported too);
* **size**: the library's installed files (its distribution and what it pulls in,
  from importlib.metadata; typing_extensions is left out: Powertools needs it anyway)
  installed and deflated into an in-memory zip, and the Lambda zip it implies: the
  rest of the runtime closure (Powertools, slack_sdk and their dependencies,
  chalicelib, app.py) zipped the same way, plus the library;
* **validation messages**: one person table with three planted problems is given to
  each library: how many does one call report, and what do they say.

Times are CPU time (``time.process_time``) inside a fresh ``python`` (interpreter
start-up excluded), median / min / max of ``--runs`` runs; all variants and ``import
boto3`` (the Lambda runtime's own floor) run interleaved, so drift on a shared machine
hits them alike, and ratios are to boto3 measured in the same run. Bytecode caches
are warmed first (one unmeasured run each), as on a warm disk.

msgspec is not a Drawbridge dependency: it is installed with pip into a throwaway
``--target`` directory under /tmp (``--msgspec-site``) and put on the children's
``PYTHONPATH`` only. Nothing is imported at module level beyond the standard library.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import io
import json
import os
import re
import statistics
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOG = ROOT / "policies" / "access.toml"
DEFAULT_SITE = Path("/tmp/drawbridge-models-bench/msgspec-site")
LIBS = ("pydantic", "msgspec", "dataclasses")
#: distributions whose installed files count as "the library" (typing_extensions is shared with Powertools)
DISTS = {"pydantic": ["pydantic"], "msgspec": ["msgspec"], "dataclasses": []}
SHARED = {"typing-extensions"}
#: not in requirements.txt, provided by the Lambda runtime: never in the zip
RUNTIME = {"boto3", "botocore", "s3transfer"}
ZIP_BUDGET_MB = 1.5

# --------------------------------------------------------------------------- child programs
# Each child runs HEAD, then BODY with ``_t(name)`` marks, then prints the marks as JSON.
HEAD = "import time as _time\n_marks = [('start', _time.process_time(), _time.perf_counter())]\n" \
       "def _t(name): _marks.append((name, _time.process_time(), _time.perf_counter()))\n"
TAIL = "\nimport json as _json, sys as _sys\n_sys.stdout.write(_json.dumps(_marks))\n"

IMPORTS = {
    "boto3": "import boto3",
    "pydantic": "from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, "
                "ValidationError, field_validator",
    "msgspec": "import msgspec, msgspec.json\nfrom msgspec import Meta, Struct, ValidationError",
    "dataclasses": "import dataclasses\nfrom dataclasses import dataclass, field, fields, replace",
}

# Plain-Python parts every variant shares (regexes, durations, building the public models).
COMMON = r'''
import re, tomllib
from datetime import datetime, timezone
from enum import Enum
ACCOUNT_ID = re.compile(r"[0-9]{12}")
SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,}")
IAM_USER = re.compile(r"[\w+=,.@-]{1,64}", re.ASCII)
ROLE_NAME = re.compile(r"[\w+=,.@/-]+", re.ASCII)
MFA = re.compile(r"[\w+=/:,.@-]{9,256}", re.ASCII)
DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?", re.I)
def seconds(text):
    m = DURATION.fullmatch(text)
    if not text or not m:
        raise ValueError(f"'{text}' is not a duration; use e.g. 30m, 2h, 1h30m or 1d")
    d, h, mi = (int(x or 0) for x in m.groups())
    total = d * 86400 + h * 3600 + mi * 60
    if not 0 < total <= 7 * 86400:
        raise ValueError(f"'{text}' is out of range")
    return total
def utc(dt):
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
class RequestStatus(str, Enum):
    PENDING = "PENDING"; APPROVED = "APPROVED"; DENIED = "DENIED"; CANCELLED = "CANCELLED"; EXPIRED = "EXPIRED"
class GrantStatus(str, Enum):
    NONE = "NONE"; GRANTING = "GRANTING"; ACTIVE = "ACTIVE"; REVOKING = "REVOKING"; REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"; FAILED = "FAILED"
def build(data, bastion, slack, people, accounts):
    """The public Catalog from validated tables; ``data`` says which keys were given."""
    everyone = tuple(sorted(people))
    accs = {}
    for akey, (acc, roles) in accounts.items():
        given = data["accounts"][akey]["roles"]
        rs = {}
        for rkey, r in roles.items():
            g = given[rkey]
            rs[rkey] = Role(key=rkey, account_key=akey, account_id=acc.id, production=acc.production,
                            role_name=r.role_name if "role_name" in g else rkey,
                            max_duration_seconds=DUR(r.max_duration), approvers=tuple(r.approvers),
                            approvals_required=r.approvals_required,
                            requesters=tuple(r.requesters) if "requesters" in g else everyone,
                            self_approval=r.self_approval,
                            reason_required=r.reason_required if "reason_required" in g else acc.production)
        accs[akey] = Account(key=akey, id=acc.id, production=acc.production, roles=rs)
    return Catalog(bastion_account_id=bastion.account_id, approvals_channel=slack.approvals_channel,
                   security_channel=slack.security_channel,
                   people={k: Person(key=k, slack_user=p.slack_user, iam_user=p.iam_user, mfa_serial=p.mfa_serial)
                           for k, p in people.items()},
                   accounts=accs)
def load(path, table):
    """Validate every table with ``table(kind, value)``, then build the Catalog."""
    data = tomllib.loads(open(path, encoding="utf-8").read())
    people = {k: table("person", v) for k, v in data["people"].items()}
    accounts = {}
    for k, v in data["accounts"].items():
        v = dict(v)
        roles = v.pop("roles", {})
        accounts[k] = (table("account", v), {rk: table("role", rv) for rk, rv in roles.items()})
    return build(data, table("bastion", data["bastion"]), table("slack", data["slack"]), people, accounts)
APPROVALS = [("bob", datetime(2026, 11, 12, 14, 2, 1)), ("carol", datetime(2026, 11, 12, 14, 2, 15))]
FIELDS = dict(request_id="req-20261112-8f093f", requester="alice", requester_slack="U0ALICE001", iam_user="alice",
              account="prod", account_id="222222222222", role="admin",
              role_arn="arn:aws:iam::222222222222:role/admin", production=True, duration_seconds=7200,
              reason="fixing incident 4521", approvals_required=2,
              created_at=datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc),
              pending_until=datetime(2026, 11, 13, 14, 0, tzinfo=timezone.utc),
              status=RequestStatus.APPROVED, grant_status=GrantStatus.ACTIVE, decided_by="carol",
              decided_at=datetime(2026, 11, 12, 14, 2, 15, tzinfo=timezone.utc),
              expires_at=datetime(2026, 11, 12, 16, 2, 15, tzinfo=timezone.utc),
              granted_at=datetime(2026, 11, 12, 14, 2, 16, tzinfo=timezone.utc),
              policy_arn="arn:aws:iam::111111111111:policy/drawbridge/drawbridge-req-20261112-8f093f",
              mfa_serial="arn:aws:iam::111111111111:mfa/alice", grant_attempts=1, version=4)
#: the probe for validation messages: three problems in one person table
BAD_PERSON = {"slack_user": "alice", "iam_user": 7, "colour": "blue"}
'''

# --- pydantic, as chalicelib used it (strict private models + frozen public models + field validators)
PYDANTIC = r'''
from typing import Annotated
def matching(pattern, problem):
    def check(v):
        if not pattern.fullmatch(v):
            raise ValueError(problem.format(value=v))
        return v
    return Annotated[str, AfterValidator(check)]
def account_id(v):
    if isinstance(v, int) and not isinstance(v, bool):
        raise ValueError(f'must be a string: write "{v}" in quotes')
    if isinstance(v, str) and not ACCOUNT_ID.fullmatch(v):
        raise ValueError(f"'{v}' is not a 12-digit AWS account id")
    return v
AccountId = Annotated[str, BeforeValidator(account_id)]
Channel = matching(SLACK_CHANNEL, "'{value}' is not a Slack channel id")
SlackUser = matching(SLACK_USER, "'{value}' is not a Slack user id (like U0ALICE001, not a name)")
IamUser = matching(IAM_USER, "'{value}' is not an IAM user name")
class Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
class RawBastion(Raw):
    account_id: AccountId
class RawSlack(Raw):
    approvals_channel: Channel
    security_channel: Channel
class RawPerson(Raw):
    slack_user: SlackUser
    iam_user: IamUser
    mfa_serial: matching(MFA, "'{value}' is not an MFA device serial") | None = None
class RawAccount(Raw):
    id: AccountId
    production: bool = False
class RawRole(Raw):
    role_name: matching(ROLE_NAME, "'{value}' is not an IAM role name") = ""
    max_duration: Annotated[int, BeforeValidator(seconds)] = 3600
    approvers: list[str] = []
    approvals_required: int = 1
    requesters: list[str] = []
    self_approval: bool = False
    reason_required: bool = False
class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
class Person(Frozen):
    key: str
    slack_user: str
    iam_user: str
    mfa_serial: str | None = None
class Role(Frozen):
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
class Account(Frozen):
    key: str
    id: str
    production: bool
    roles: dict[str, Role]
class Catalog(Frozen):
    bastion_account_id: str
    approvals_channel: str
    security_channel: str
    people: dict[str, Person]
    accounts: dict[str, Account]
    warnings: tuple[str, ...] = ()
RAW = {"bastion": RawBastion, "slack": RawSlack, "person": RawPerson, "account": RawAccount, "role": RawRole}
DUR = int
def table(kind, value):
    return RAW[kind].model_validate(value)
def probe():
    try:
        RawPerson.model_validate(BAD_PERSON)
    except ValidationError as exc:
        errors = exc.errors()
        return {"problems": [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors],
                "custom": f"loc {errors[0]['loc']!r}, ctx error: {errors[0]['ctx']['error']}"}
'''
PYDANTIC_DOMAIN = r'''
class Approval(BaseModel):
    model_config = ConfigDict(frozen=True)
    person: str
    at: datetime
    _utc = field_validator("at")(lambda cls, v: utc(v))
class Request(BaseModel):
    model_config = ConfigDict(frozen=True)
    request_id: str
    requester: str
    requester_slack: str
    iam_user: str
    account: str
    account_id: str
    role: str
    role_arn: str
    production: bool
    duration_seconds: int
    reason: str = ""
    approvals_required: int
    created_at: datetime
    pending_until: datetime
    status: RequestStatus = RequestStatus.PENDING
    grant_status: GrantStatus = GrantStatus.NONE
    approvals: tuple[Approval, ...] = ()
    decided_by: str | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    granted_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    policy_arn: str | None = None
    mfa_serial: str | None = None
    grant_attempts: int = 0
    note: str | None = None
    version: int = 1
    @field_validator("created_at", "pending_until", "decided_at", "expires_at", "granted_at", "ended_at")
    @classmethod
    def _aware(cls, v):
        return None if v is None else utc(v)
def new():
    return Request(approvals=tuple(Approval(person=p, at=a) for p, a in APPROVALS), **FIELDS)
def dump(r):
    return r.model_dump_json()
def parse(text):
    return Request.model_validate_json(text)
'''

# --- msgspec: Structs with Meta constraints; convert() validates, Struct() does not
MSGSPEC = r'''
from typing import Annotated
def pattern(p):
    return Annotated[str, Meta(pattern=f"^(?:{p.pattern})$")]
class Raw(Struct, frozen=True, forbid_unknown_fields=True):
    pass
class RawBastion(Raw):
    account_id: pattern(ACCOUNT_ID)
class RawSlack(Raw):
    approvals_channel: pattern(SLACK_CHANNEL)
    security_channel: pattern(SLACK_CHANNEL)
class RawPerson(Raw):
    slack_user: pattern(SLACK_USER)
    iam_user: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_+=,.@-]{1,64}$")]
    mfa_serial: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_+=/:,.@-]{9,256}$")] | None = None
class RawAccount(Raw):
    id: pattern(ACCOUNT_ID)
    production: bool = False
class RawRole(Raw):
    role_name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_+=,.@/-]+$")] = ""
    max_duration: str = "1h"
    approvers: list[str] = []
    approvals_required: Annotated[int, Meta(ge=1)] = 1
    requesters: list[str] = []
    self_approval: bool = False
    reason_required: bool = False
class Person(Struct, frozen=True, kw_only=True):
    key: str
    slack_user: str
    iam_user: str
    mfa_serial: str | None = None
class Role(Struct, frozen=True, kw_only=True):
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
class Account(Struct, frozen=True, kw_only=True):
    key: str
    id: str
    production: bool
    roles: dict[str, Role]
class Catalog(Struct, frozen=True, kw_only=True):
    bastion_account_id: str
    approvals_channel: str
    security_channel: str
    people: dict[str, Person]
    accounts: dict[str, Account]
    warnings: tuple[str, ...] = ()
RAW = {"bastion": RawBastion, "slack": RawSlack, "person": RawPerson, "account": RawAccount, "role": RawRole}
DUR = seconds
def table(kind, value):
    return msgspec.convert(value, RAW[kind])
class CheckedPerson(Struct, frozen=True):
    slack_user: str
    def __post_init__(self):  # the only place msgspec takes a message of ours
        if not SLACK_USER.fullmatch(self.slack_user):
            raise ValueError(f"'{self.slack_user}' is not a Slack user id; copy it from the profile")
def probe():
    out = {}
    try:
        msgspec.convert({"people": {"alice": BAD_PERSON}}, dict[str, dict[str, RawPerson]])
    except ValidationError as exc:
        out["problems"] = [str(exc)]
    try:
        msgspec.convert({"people": {"alice": {"slack_user": "alice"}}}, dict[str, dict[str, CheckedPerson]])
    except ValidationError as exc:
        out["custom"] = str(exc)
    return out
'''
MSGSPEC_DOMAIN = r'''
class Approval(Struct, frozen=True, kw_only=True):
    person: str
    at: datetime
class Request(Struct, frozen=True, kw_only=True):
    request_id: str
    requester: str
    requester_slack: str
    iam_user: str
    account: str
    account_id: str
    role: str
    role_arn: str
    production: bool
    duration_seconds: int
    approvals_required: int
    created_at: datetime
    pending_until: datetime
    reason: str = ""
    status: RequestStatus = RequestStatus.PENDING
    grant_status: GrantStatus = GrantStatus.NONE
    approvals: tuple[Approval, ...] = ()
    decided_by: str | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    granted_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    policy_arn: str | None = None
    mfa_serial: str | None = None
    grant_attempts: int = 0
    note: str | None = None
    version: int = 1
_decoder = msgspec.json.Decoder(Request)
def new():
    return Request(approvals=tuple(Approval(person=p, at=utc(a)) for p, a in APPROVALS), **FIELDS)
def dump(r):
    return msgspec.json.encode(r)
def parse(text):
    return _decoder.decode(text)
'''

# --- stdlib: frozen dataclasses, the checks written out (as the catalog's already are)
DATACLASSES = r'''
MISSING = object()
def string(pattern=None, problem=""):
    def check(v):
        if not isinstance(v, str):
            return "must be a string (in quotes)"
        if pattern is not None and not pattern.fullmatch(v):
            return problem.format(value=v)
    return check
def typed(t, what):
    return lambda v: None if type(v) is t else what
def strings(v):
    if not isinstance(v, list):
        return "must be a list"
    if not all(isinstance(x, str) for x in v):
        return "must be a list of strings"
def duration(v):
    if not isinstance(v, str):
        return 'must be a duration in quotes, e.g. "4h"'
    try:
        seconds(v)
    except ValueError as exc:
        return str(exc)
BOOL = typed(bool, "must be true or false")
SPECS = {  # key: (check, default)
    "bastion": {"account_id": (string(ACCOUNT_ID, "'{value}' is not a 12-digit AWS account id"), MISSING)},
    "slack": {k: (string(SLACK_CHANNEL, "'{value}' is not a Slack channel id"), MISSING)
              for k in ("approvals_channel", "security_channel")},
    "person": {"slack_user": (string(SLACK_USER, "'{value}' is not a Slack user id (like U0ALICE001, not a name)"),
                              MISSING),
               "iam_user": (string(IAM_USER, "'{value}' is not an IAM user name"), MISSING),
               "mfa_serial": (string(MFA, "'{value}' is not an MFA device serial"), None)},
    "account": {"id": (string(ACCOUNT_ID, "'{value}' is not a 12-digit AWS account id"), MISSING),
                "production": (BOOL, False)},
    "role": {"role_name": (string(ROLE_NAME, "'{value}' is not an IAM role name"), ""),
             "max_duration": (duration, "1h"), "approvers": (strings, []),
             "approvals_required": (typed(int, "must be a whole number"), 1), "requesters": (strings, []),
             "self_approval": (BOOL, False), "reason_required": (BOOL, False)},
}
class Invalid(ValueError):
    pass
class Fields:
    def __init__(self, values):
        self.__dict__.update(values)
def check(kind, value, where=""):
    """(values, problems): every problem of the table, each 'key: problem'."""
    spec, values, problems = SPECS[kind], {}, []
    if not isinstance(value, dict):
        return values, [f"{where}: must be a table"]
    problems += [f"{where}{k}: unknown key" for k in value if k not in spec]
    for k, (chk, default) in spec.items():
        if k not in value:
            if default is MISSING:
                problems.append(f"{where}{k}: missing required key")
            else:
                values[k] = default
        elif (problem := chk(value[k])) is not None:
            problems.append(f"{where}{k}: {problem}")
        else:
            values[k] = value[k]
    return values, problems
@dataclass(frozen=True)
class Person:
    key: str
    slack_user: str
    iam_user: str
    mfa_serial: str | None = None
@dataclass(frozen=True)
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
@dataclass(frozen=True)
class Account:
    key: str
    id: str
    production: bool
    roles: dict
@dataclass(frozen=True)
class Catalog:
    bastion_account_id: str
    approvals_channel: str
    security_channel: str
    people: dict
    accounts: dict
    warnings: tuple[str, ...] = ()
DUR = seconds
def table(kind, value):
    values, problems = check(kind, value)
    if problems:
        raise Invalid("\n".join(problems))
    return Fields(values)
def probe():
    found = check("person", BAD_PERSON, "people.alice.")[1]
    return {"problems": found, "custom": found[1]}
'''
DATACLASSES_DOMAIN = r'''
@dataclass(frozen=True)
class Approval:
    person: str
    at: datetime
    def __post_init__(self):
        object.__setattr__(self, "at", utc(self.at))
@dataclass(frozen=True, kw_only=True)
class Request:
    request_id: str
    requester: str
    requester_slack: str
    iam_user: str
    account: str
    account_id: str
    role: str
    role_arn: str
    production: bool
    duration_seconds: int
    reason: str = ""
    approvals_required: int
    created_at: datetime
    pending_until: datetime
    status: RequestStatus = RequestStatus.PENDING
    grant_status: GrantStatus = GrantStatus.NONE
    approvals: tuple[Approval, ...] = ()
    decided_by: str | None = None
    decided_at: datetime | None = None
    expires_at: datetime | None = None
    granted_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    policy_arn: str | None = None
    mfa_serial: str | None = None
    grant_attempts: int = 0
    note: str | None = None
    version: int = 1
    def __post_init__(self):
        for name in TIMES:
            v = getattr(self, name)
            if v is not None:
                object.__setattr__(self, name, utc(v))
TIMES = ("created_at", "pending_until", "decided_at", "expires_at", "granted_at", "ended_at")
def plain(v):
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, tuple):
        return [plain(x) for x in v]
    if hasattr(v, "__dataclass_fields__"):
        return {f.name: plain(getattr(v, f.name)) for f in fields(v)}
    return v
def new():
    return Request(approvals=tuple(Approval(p, a) for p, a in APPROVALS), **FIELDS)
import json
def dump(r):
    return json.dumps(plain(r), separators=(",", ":"))
def parse(text):
    d = json.loads(text)
    for name in TIMES:
        if d[name] is not None:
            d[name] = datetime.fromisoformat(d[name])
    d["status"] = RequestStatus(d["status"])
    d["grant_status"] = GrantStatus(d["grant_status"])
    d["approvals"] = tuple(Approval(a["person"], datetime.fromisoformat(a["at"])) for a in d["approvals"])
    return Request(**d)
'''
SOURCES = {"pydantic": (PYDANTIC, PYDANTIC_DOMAIN), "msgspec": (MSGSPEC, MSGSPEC_DOMAIN),
           "dataclasses": (DATACLASSES, DATACLASSES_DOMAIN)}


#: this working tree's own modules, for before/after figures
TREE = {
    "catalog": f"from chalicelib.catalog import load_catalog\n_t('import')\nload_catalog({str(CATALOG)!r})\n_t('work')",
    "domain": "import chalicelib.domain.model\n_t('import')\n_t('work')",
}


def program(lib: str, task: str) -> str:
    """The child's source: ``task`` is import, catalog, roundtrip or probe."""
    if lib == "boto3":
        return HEAD + IMPORTS["boto3"] + "\n_t('import')" + TAIL
    if lib == "tree":
        return HEAD + TREE[task] + TAIL
    catalog, domain = SOURCES[lib]
    parts = [HEAD, IMPORTS[lib], "_t('import')"]
    if task == "import":
        return "\n".join(parts) + TAIL
    if task in ("catalog", "probe"):
        parts += [COMMON, catalog, "_t('define')"]
        if task == "probe":
            return "\n".join([*parts, "import json, sys", "sys.stdout.write(json.dumps(probe()))"])
        parts += [f"cat = load({str(CATALOG)!r}, table)", "_t('work')",
                  "assert cat.accounts['prod'].roles['admin'].max_duration_seconds == 4 * 3600, cat"]
    elif task == "roundtrip":
        parts += [COMMON, domain, "_t('define')", "r = new()", "back = parse(dump(r))", "_t('work')",
                  "assert back == r, (back, r)"]
    return "\n".join(parts) + TAIL


def run_child(source: str, site: Path | None) -> list:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, "-c", source], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-1500:])
    return json.loads(proc.stdout)


def warm(source: str, site: Path | None) -> None:
    """One unmeasured run that may write bytecode caches."""
    env = {**os.environ}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    subprocess.run([sys.executable, "-c", source], cwd=ROOT, env=env, capture_output=True, timeout=120)


def span(marks: list, start: str, end: str) -> float:
    at = {name: cpu for name, cpu, _wall in marks}
    return at[end] - at[start]


# --------------------------------------------------------------------------- sizes


def _dist(name: str, site: Path | None) -> md.Distribution:
    if site is None:
        return md.distribution(name)
    found = list(md.distributions(name=name, path=[str(site)]))
    if not found:
        raise LookupError(name)
    return found[0]


def _dist_files(name: str, site: Path | None) -> list[tuple[Path, str]]:
    """(installed file, its name in a zip) for one distribution, without bytecode caches."""
    dist = _dist(name, site)
    out = []
    for f in dist.files or []:
        path = Path(str(dist.locate_file(f)))
        if f.parts[0] == ".." or "__pycache__" in f.parts or f.suffix == ".pyc" or not path.is_file():
            continue
        out.append((path, f.as_posix()))
    return out


def closure(names: list[str], site: Path | None, skip: set[str]) -> list[str]:
    """``names`` and what they require (no extras), less ``skip``."""
    seen: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen or key in skip:
            continue
        seen.append(key)
        dist = _dist(name, site)
        for req in dist.requires or []:
            if "extra ==" in req or "extra==" in req:
                continue
            todo.append(re.match(r"[A-Za-z0-9_.-]+", req).group(0))
    return seen


def zipped(files: list[tuple[Path, str]]) -> tuple[int, int]:
    """(installed bytes, bytes of a deflated zip of them)."""
    buf = io.BytesIO()
    raw = 0
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, arc in files:
            raw += path.stat().st_size
            z.write(path, arc)
    return raw, len(buf.getvalue())


def sizes(site: Path | None) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for lib in LIBS:
        if not DISTS[lib]:
            result[lib] = {"dists": [], "raw": 0, "zip": 0}
            continue
        where = site if lib == "msgspec" else None
        if where is None and lib == "msgspec":
            result[lib] = None
            continue
        try:
            names = closure(DISTS[lib], where, SHARED)
        except LookupError:
            result[lib] = None
            continue
        raw, zsize = zipped([f for n in names for f in _dist_files(n, where)])
        result[lib] = {"dists": names, "raw": raw, "zip": zsize}
    # the rest of the Lambda zip: the runtime requirements' closure without the model library
    reqs = [re.match(r"[A-Za-z0-9_.-]+", line).group(0)
            for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    base = closure([r for r in reqs if r != "pydantic"], None, set(RUNTIME) | {"pydantic"})
    files = [f for n in base for f in _dist_files(n, None)]
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        files.append((path, str(path.relative_to(ROOT))))
    files.append((ROOT / "app.py", "app.py"))
    files.append((CATALOG, "chalicelib/access.toml"))
    import chalice  # the runtime part chalice package puts in every zip
    for name in ("__init__.py", "app.py"):
        files.append((Path(chalice.__file__).with_name(name), f"chalice/{name}"))
    raw, zsize = zipped(files)
    result["rest"] = {"dists": base, "raw": raw, "zip": zsize}
    return result


def ensure_msgspec(site: Path) -> Path | None:
    if any(site.glob("msgspec-*.dist-info")):
        return site
    site.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--target", str(site), "msgspec"], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        print(f"[models] msgspec could not be installed: {proc.stderr.strip()[-300:]}", file=sys.stderr)
        return None
    return site


# --------------------------------------------------------------------------- the table


def fmt(samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return f"{statistics.median(ms):.1f} ({min(ms):.1f}–{max(ms):.1f})"


def mb(n: int) -> str:
    """MB of 2**20 bytes, as bench/package.py and docs/PERFORMANCE.md count the zip."""
    return f"{n / 2**20:.2f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per figure (default 7)")
    parser.add_argument("--msgspec-site", type=Path, default=DEFAULT_SITE,
                        help=f"pip --target directory for msgspec (default {DEFAULT_SITE})")
    parser.add_argument("--json", metavar="PATH", help="also write the raw figures as JSON")
    args = parser.parse_args(argv)

    site = ensure_msgspec(args.msgspec_site)
    libs = [lib for lib in LIBS if lib != "msgspec" or site is not None]
    sites = {lib: (site if lib == "msgspec" else None) for lib in [*libs, "boto3", "tree"]}
    jobs = [("boto3", "import")] + [(lib, task) for lib in libs for task in ("import", "catalog", "roundtrip")]
    jobs += [("tree", "catalog"), ("tree", "domain")]
    sources = {job: program(*job) for job in jobs}
    for job in jobs:
        warm(sources[job], sites[job[0]])
    marks: dict[tuple[str, str], list] = {job: [] for job in jobs}
    for i in range(args.runs):  # interleaved: every job once per round
        print(f"[models] round {i + 1}/{args.runs}", file=sys.stderr, flush=True)
        for job in jobs:
            marks[job].append(run_child(sources[job], sites[job[0]]))
    probes = {lib: json.loads(subprocess.run(
        [sys.executable, "-c", program(lib, "probe")], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, **({"PYTHONPATH": str(site)} if lib == "msgspec" else {})}).stdout or "{}")
        for lib in libs}
    size = sizes(site)

    boto = [span(m, "start", "import") for m in marks[("boto3", "import")]]
    boto_med = statistics.median(boto)
    figures: dict[str, dict] = {"boto3": {"import": boto}}
    rows = [("| | " + " | ".join(libs) + " |"), "| --- |" + " --- |" * len(libs)]

    def row(label: str, cells: list[str]) -> None:
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    for lib in libs:
        figures[lib] = {
            "import": [span(m, "start", "import") for m in marks[(lib, "import")]],
            "catalog": [span(m, "start", "work") for m in marks[(lib, "catalog")]],
            "catalog_define_load": [span(m, "import", "work") for m in marks[(lib, "catalog")]],
            "roundtrip": [span(m, "start", "work") for m in marks[(lib, "roundtrip")]],
            "roundtrip_only": [span(m, "define", "work") for m in marks[(lib, "roundtrip")]],
        }

    def ratio(samples: list[float]) -> str:
        return f"{statistics.median(samples) / boto_med:.2f}×"

    row("(a) cold import, ms CPU: median (min–max)", [fmt(figures[lib]["import"]) for lib in libs])
    row("(a) ÷ `import boto3`", [ratio(figures[lib]["import"]) for lib in libs])
    row("(b) import + define catalog models + load access.toml, ms", [fmt(figures[lib]["catalog"]) for lib in libs])
    row("(b) of which define + load, ms", [fmt(figures[lib]["catalog_define_load"]) for lib in libs])
    row("(b) ÷ `import boto3`", [ratio(figures[lib]["catalog"]) for lib in libs])
    row("(c) import + define Request + one JSON round trip, ms", [fmt(figures[lib]["roundtrip"]) for lib in libs])
    row("(c) of which the first round trip itself, ms", [fmt(figures[lib]["roundtrip_only"]) for lib in libs])
    row("(c) ÷ `import boto3`", [ratio(figures[lib]["roundtrip"]) for lib in libs])
    rest = size["rest"]
    for lib in libs:
        if size.get(lib) is None:
            size[lib] = {"dists": [], "raw": 0, "zip": 0, "unknown": True}
    row("installed size (distributions)",
        [f"{mb(size[lib]['raw'])} ({', '.join(size[lib]['dists']) or 'stdlib'})" for lib in libs])
    row("zipped (deflate)", [mb(size[lib]["zip"]) for lib in libs])
    row(f"implied Lambda zip: rest {mb(rest['zip'])} + library (budget ≤ {ZIP_BUDGET_MB} MB)",
        [f"{mb(rest['zip'] + size[lib]['zip'])} ({'within' if (rest['zip'] + size[lib]['zip']) / 2**20 <= ZIP_BUDGET_MB else 'over'})"
         for lib in libs])
    row("problems reported for a table with 3 planted (one call)",
        [str(len(probes[lib].get("problems", []))) for lib in libs])
    row("what it says", ["<br>".join(p.replace("|", "\\|") for p in probes[lib].get("problems", [])) or "—"
                         for lib in libs])
    row("our own 'key: problem; fix' message: how it comes out",
        [probes[lib].get("custom", "—").replace("|", "\\|") for lib in libs])

    print(f"Python {sys.version.split()[0]}, {args.runs} fresh processes per figure (CPU time, interpreter "
          f"start-up excluded); `import boto3` (the floor): {fmt(boto)} ms")
    print()
    print("\n".join(rows))
    print()
    tree = {task: [span(m, "start", "work") for m in marks[("tree", task)]] for task in TREE}
    figures["tree"] = tree
    print(f"This tree: `import chalicelib.catalog` + `load_catalog(policies/access.toml)` {fmt(tree['catalog'])} ms "
          f"({ratio(tree['catalog'])} boto3); `import chalicelib.domain.model` {fmt(tree['domain'])} ms "
          f"({ratio(tree['domain'])} boto3)")
    print()
    print(f"rest of the zip = {', '.join(rest['dists'])}, chalicelib, app.py, chalice runtime "
          f"(installed {mb(rest['raw'])}); typing_extensions counted there (Powertools needs it)")
    if args.json:
        Path(args.json).write_text(json.dumps({"figures": figures, "boto3": boto, "sizes": size,
                                               "probes": probes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
