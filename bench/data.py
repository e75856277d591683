"""Synthetic table contents: history, other people's live grants, expiring grants.

Records are real ``Request`` values written with the store's own ``request_item``
(so index keys are exactly what the app would write: none for ended records),
25 at a time with ``batch_write_item``. People are synthetic (``bench00042``), never
catalog people, except where history of catalog people is asked for.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Iterable, Iterator

from chalicelib.domain.model import Approval, GrantStatus, Principal, Request, RequestStatus

PROD_ADMIN = "arn:aws:iam::222222222222:role/admin"
_ENDINGS = [  # (status, grant status) of ended records, cycled
    (RequestStatus.APPROVED, GrantStatus.EXPIRED),
    (RequestStatus.APPROVED, GrantStatus.REVOKED),
    (RequestStatus.DENIED, GrantStatus.NONE),
    (RequestStatus.APPROVED, GrantStatus.EXPIRED),
    (RequestStatus.CANCELLED, GrantStatus.NONE),
    (RequestStatus.EXPIRED, GrantStatus.NONE),
    (RequestStatus.APPROVED, GrantStatus.FAILED),
]


def person(i: int) -> tuple[str, str, str]:
    """(person key, Slack id, IAM user) of synthetic person ``i``."""
    return f"bench{i:05d}", f"U0BN{i:06d}", f"bench-user-{i:05d}"


def _rid(at: datetime, serial: int) -> str:
    return f"req-{at:%Y%m%d}-{serial % 0xFFFFFF:06x}"


def _base(rid: str, who: tuple[str, str, str], created: datetime, *, hours: int = 1,
          reason: str = "bench") -> dict:
    key, slack, iam_user = who
    return dict(request_id=rid, requester=key, requester_slack=slack, principal=Principal.iam_user(iam_user),
                account="prod", account_id="222222222222", role="admin", role_arn=PROD_ADMIN,
                production=True, duration_seconds=hours * 3600, reason=reason, approvals_required=2,
                created_at=created, pending_until=created + timedelta(hours=1))


def historical(n: int, now: datetime, *, catalog_people: Iterable[tuple[str, str, str]] = (),
               serial0: int = 0) -> Iterator[Request]:
    """``n`` ended requests from the last year (before today), some of them by catalog people."""
    people = list(catalog_people)
    for i in range(n):
        serial = serial0 + i
        created = (now - timedelta(days=1 + serial % 365, minutes=serial % 1440)).replace(microsecond=0)
        who = people[i % len(people)] if people and i % 3 == 0 else person(serial % 5000)
        status, grant = _ENDINGS[serial % len(_ENDINGS)]
        fields = _base(_rid(created, serial), who, created)
        decided = created + timedelta(minutes=3)
        fields.update(status=status, grant_status=grant, decided_at=decided, decided_by="bob", version=3)
        if status is RequestStatus.APPROVED:
            fields.update(approvals=(Approval(person="bob", at=decided), Approval(person="carol", at=decided)),
                          expires_at=decided + timedelta(hours=1), granted_at=decided + timedelta(seconds=2),
                          ended_at=decided + timedelta(minutes=30), ended_by="drawbridge", version=5)
            if grant is GrantStatus.FAILED:
                fields.update(granted_at=None, note="bench: failed grant")
        yield Request(**fields)


def active(n: int, now: datetime, *, expires_at: datetime, first_person: int = 10_000,
           serial0: int = 5_000_000, who: tuple[str, str, str] | None = None) -> Iterator[Request]:
    """``n`` live grants (ACTIVE) of ``n`` distinct synthetic people (or all of ``who``), as the
    approval path writes them: approved 4 h before ``expires_at`` (no later than now)."""
    for i in range(n):
        decided = min(expires_at - timedelta(hours=4), now).replace(microsecond=0)
        created = decided - timedelta(minutes=2)
        rid = _rid(created, serial0 + i)
        fields = _base(rid, who or person(first_person + i), created, hours=4)
        fields.update(status=RequestStatus.APPROVED, grant_status=GrantStatus.ACTIVE, decided_by="carol",
                      decided_at=decided, approvals=(Approval(person="bob", at=decided),
                                                     Approval(person="carol", at=decided)),
                      expires_at=expires_at, granted_at=decided + timedelta(seconds=2), version=4,
                      policy_arn=f"arn:aws:iam::111111111111:policy/drawbridge/drawbridge-{rid}")
        yield Request(**fields)


def write(db, table: str, requests: Iterable[Request]) -> int:
    """batch_write_item the requests' table items (25 a call); returns how many were written."""
    from chalicelib.adapters.store import request_item

    batch: list[dict] = []
    written = 0

    def flush() -> None:
        nonlocal batch
        pending = {table: batch}
        while pending:
            resp = db.batch_write_item(RequestItems=pending)
            pending = resp.get("UnprocessedItems") or {}
        batch = []

    for req in requests:
        batch.append({"PutRequest": {"Item": request_item(req)}})
        written += 1
        if len(batch) == 25:
            flush()
    if batch:
        flush()
    return written


def grant_in_iam(iam, bastion_account_id: str, requests: Iterable[Request]) -> int:
    """Give each request's IAM user (created if missing) the grant's real managed policy."""
    from chalicelib import policy as pol
    from chalicelib.adapters.iam import IamGrants

    grants = IamGrants(iam, bastion_account_id)
    n = 0
    for req in requests:
        try:
            iam.create_user(UserName=req.iam_user)
        except iam.exceptions.EntityAlreadyExistsException:
            pass
        grants.grant(principal=req.principal, request_id=req.request_id,
                     document=pol.grant_policy(req.role_arn, req.expires_at, req.request_id),
                     description=pol.description(req.request_id, req.requester, req.label, req.expires_at),
                     tags={"drawbridge:request-id": req.request_id})
        n += 1
    return n
