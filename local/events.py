"""The events the non-HTTP handlers get, and the time helpers they need.

* :func:`load_cloudtrail` / :func:`refresh_cloudtrail`: a CloudTrail record as EventBridge
  delivers it to ``on_role_assumed`` (a fixture from ``tests/fixtures/cloudtrail/`` or any
  file), and a copy of it as a *new* call: fresh ids, a chosen time, caller and role.
* :func:`scheduled_event`: what the every-minute rule delivers to ``sweep``.
* :func:`iso_z` / :func:`parse_time`: ISO 8601 to and from aware UTC datetimes.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone
from pathlib import Path

# the project's own fixtures, the same files the tests read (tests/fixtures/README.md)
FIXTURES_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
CLOUDTRAIL_DIR = FIXTURES_DIR / "cloudtrail"
REGION = "us-east-1"


def iso_z(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """ISO 8601 (``Z`` or offset; naive = UTC) -> aware UTC datetime."""
    dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def load_cloudtrail(name_or_path: str) -> dict:
    """A whole EventBridge event: a file path, or a fixture name from tests/fixtures/cloudtrail."""
    path = Path(name_or_path)
    if not path.is_file():
        path = CLOUDTRAIL_DIR / name_or_path
        if not path.suffix:
            path = path.with_suffix(".json")
    if not path.is_file():
        known = sorted(p.stem for p in CLOUDTRAIL_DIR.glob("*.json")) if CLOUDTRAIL_DIR.is_dir() else []
        raise FileNotFoundError(f"no CloudTrail event {name_or_path!r} (a path, or one of {known or 'nothing: '}"
                                f"{'' if known else str(CLOUDTRAIL_DIR) + ' is missing'})")
    return json.loads(path.read_text(encoding="utf-8"))


def refresh_cloudtrail(event: dict, *, at: datetime | None = None, iam_user: str | None = None,
                       access_key_id: str | None = None, assumed_role_arn: str | None = None) -> dict:
    """A copy of ``event`` as a new call: fresh event/request/shared ids and, when given, a new
    time (``at``, second precision as CloudTrail writes it), caller and assumed-role ARN."""
    event = copy.deepcopy(event)
    detail = event.setdefault("detail", {})
    event["id"] = str(uuid.uuid4())
    detail["eventID"] = str(uuid.uuid4())
    if "requestID" in detail:
        detail["requestID"] = str(uuid.uuid4())
    if "sharedEventID" in detail:
        detail["sharedEventID"] = str(uuid.uuid4())
    if at is not None:
        event["time"] = detail["eventTime"] = iso_z(at)
    identity = detail.get("userIdentity") or {}
    if iam_user and identity.get("type") == "IAMUser":
        identity["userName"] = iam_user
        identity["arn"] = f"arn:aws:iam::{identity.get('accountId', '')}:user/{iam_user}"
        params = detail.get("requestParameters") or {}
        for key in ("roleSessionName", "sourceIdentity"):
            if key in params:
                params[key] = iam_user
    if access_key_id and "accessKeyId" in identity:
        identity["accessKeyId"] = access_key_id
    user = ((detail.get("responseElements") or {}).get("assumedRoleUser") or {})
    if assumed_role_arn and "arn" in user:
        user["arn"] = assumed_role_arn
    return event


def scheduled_event(account: str, at: datetime | None = None, region: str = REGION) -> dict:
    """The EventBridge scheduled event the every-minute rule delivers to ``sweep``."""
    at = at or datetime.now(timezone.utc)
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
            "source": "aws.events", "account": account, "time": iso_z(at), "region": region,
            "resources": [f"arn:aws:events:{region}:{account}:rule/drawbridge-local-sweep"], "detail": {}}
