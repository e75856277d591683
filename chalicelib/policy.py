"""The IAM grant: one customer-managed policy per grant (pure rendering).

Why managed policies and not user inline policies (docs/decisions/0001-grant-representation.md):
inline policies on a user share 2,048 non-whitespace characters, about 6 of
these statements; a managed policy holds 6,144 characters on its own, so each
grant gets its own and the per-user limit becomes the number of managed
policies a user may have attached (10 by default, 20 at most). They also live
under their own path, so Drawbridge's IAM permissions can be limited to
``policy/drawbridge/*`` and it can never edit a policy it did not create.

Expiry is enforced by IAM itself (``aws:CurrentTime``); deleting the policy at
expiry is clean-up.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from .domain.model import iso_z

#: default IAM path of grant policies; each deployed stage uses its own (/drawbridge/<stage>/)
#: so two installations in one bastion account never see, let alone remove, each other's grants
POLICY_PATH = "/drawbridge/"
_PATH = re.compile(r"/drawbridge/(?:[A-Za-z0-9_-]+/)?")
POLICY_PREFIX = "drawbridge-"
#: AWS default quota of managed policies attached to one IAM user (adjustable up to 20)
DEFAULT_MANAGED_POLICIES_PER_USER = 10
MANAGED_POLICY_MAX_CHARS = 6144
USER_INLINE_TOTAL_MAX_CHARS = 2048


def stage_of(path: str) -> str:
    """``/drawbridge/prod/`` -> ``prod``; ``/drawbridge/`` -> ``""``."""
    return check_path(path)[len("/drawbridge/"):].strip("/")


def policy_name(request_id: str, path: str = POLICY_PATH) -> str:
    """``drawbridge-<stage>-<request id>``. IAM policy names are unique per account whatever
    their path, so two stages in one bastion account must not share names."""
    stage = stage_of(path)
    return f"{POLICY_PREFIX}{stage}-{request_id}" if stage else f"{POLICY_PREFIX}{request_id}"


def check_path(path: str) -> str:
    """A grant policy path: ``/drawbridge/`` or ``/drawbridge/<stage>/``."""
    if not _PATH.fullmatch(path):
        raise ValueError(f"grant policy path must be /drawbridge/ or /drawbridge/<stage>/, not {path!r}")
    return path


def policy_arn(bastion_account_id: str, request_id: str, path: str = POLICY_PATH) -> str:
    return f"arn:aws:iam::{bastion_account_id}:policy{path}{policy_name(request_id, path)}"


def request_id_from_policy_name(name: str, path: str = POLICY_PATH) -> str | None:
    """The request id in a grant policy's name, if it is a name this stage gives its grants."""
    prefix = policy_name("", path)
    return name[len(prefix):] if name.startswith(prefix) and len(name) > len(prefix) else None


def statement_id(request_id: str) -> str:
    return "Drawbridge" + re.sub(r"[^A-Za-z0-9]", "", request_id)


def grant_statement(role_arn: str, expires_at: datetime, request_id: str) -> dict:
    return {
        "Sid": statement_id(request_id),
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": role_arn,
        "Condition": {
            "DateLessThan": {"aws:CurrentTime": iso_z(expires_at)},
            "Bool": {"aws:MultiFactorAuthPresent": "true"},
        },
    }


def grant_policy(role_arn: str, expires_at: datetime, request_id: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [grant_statement(role_arn, expires_at, request_id)]}


def _statements(document: dict) -> list[dict]:
    found = document.get("Statement", [])
    return [st for st in (found if isinstance(found, list) else [found]) if isinstance(st, dict)]


def expiry_of(document: dict) -> str | None:
    """The ``aws:CurrentTime`` a grant document allows access before (its expiry, as IAM
    holds it); None unless every statement names the same one."""
    times = {(st.get("Condition") or {}).get("DateLessThan", {}).get("aws:CurrentTime")
             for st in _statements(document)}
    return times.pop() if len(times) == 1 and None not in times else None


def without_expiry(document: dict) -> dict:
    """The document with every ``DateLessThan aws:CurrentTime`` blanked: what a grant allows,
    whatever until when. Two documents equal under it differ only in their expiry."""
    out = json.loads(json.dumps(document))
    for st in _statements(out):
        less = (st.get("Condition") or {}).get("DateLessThan")
        if isinstance(less, dict) and "aws:CurrentTime" in less:
            less["aws:CurrentTime"] = None
    return out


def render(document: dict) -> str:
    """The exact JSON sent to IAM (stable key order, compact)."""
    return json.dumps(document, separators=(",", ":"))


def iam_size(document: dict) -> int:
    """Size as IAM counts it: characters excluding whitespace."""
    return len(re.sub(r"\s", "", json.dumps(document)))


def description(request_id: str, requester: str, label: str, expires_at: datetime) -> str:
    # Visible in the IAM console: who, what, and when it stops working.
    return f"Drawbridge {request_id}: {requester} -> {label} until {iso_z(expires_at)}"
