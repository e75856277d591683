"""DynamoDB store: the single table declared in policies/table.json.

Items (PK / SK):

* ``REQ#<id> / REQUEST``       the request record (JSON in ``doc``) + index keys
* ``REQ#<id> / EVENT#<seq>``   immutable audit events, one per status change (+ ``by_day`` keys)
* ``REQ#<id> / USED``          the grant's first use was told on its card
* ``REQ#<id> / CARD``          where the approval card lives in Slack
* ``REQ#<id> / ACTIVITY``      the grant's activity tally (activity_items.py)
* ``ACTIVITY#<eventID> / CLAIM`` one counted write call of a grant (activity_items.py)
* ``REQ#<id> / SENT#<kind>``   a one-time message (a DM) was sent: a re-run job sends it once
* ``ALERT#<key> / ALERT``      one security alert per AssumeRole call (dedupe + audit); a denied
  attempt (an uncovered way in, a failed attempt) also carries ``by_day`` keys
* ``PATH / <account>#<region>`` the alert path's heartbeats (path_items.py)
* ``ALERTGROUP#<key> / GROUP`` failed attempts of one caller on one target in one window:
  their count, first/last event time, and the one Slack line that shows them
* ``DIGEST#<key> / DIGEST``    many ways in of one principal in a burst, one Slack message
  (alert_calls.py)

Sparse indexes keep every query proportional to what is live, never to history:

* ``open_by_person``  (open_pk = OPEN#<person>)   pending requests and live grants, for ``list``
* ``due``             (due_pk = DUE#<n> / OWED#<n>, due_at)  what the sweep must look at, by time
* ``grants_by_user``  (grant_pk = GRANT#<principal key>, grant_sk = <end>#<id>)  alert correlation;
  the same partition holds the principal's open burst digests and first-use markers, and
  ``USES#<request id>`` partitions hold the calls each grant covered
* ``by_day``  (day_pk = DAY#<yyyy-mm-dd>, day_sk = <iso time>#<request id>#<seq> for an audit
  event, <iso time>#ALERT#<key> for a denied attempt; projects ``doc`` only)  the audit trail by
  time, for the access review (:meth:`DynamoStore.events_between`, usecases/access_review.py):
  one Query per day of the window. Items written before the index existed carry no day keys
  and are not in it (docs/decisions/0011-access-review.md).

The ``due`` index is sharded: a request's record carries ``DUE#<n>`` and what it owes people
``OWED#<n>``, ``n`` = CRC-32 of the request id modulo :data:`DUE_SHARDS`, so no single index
partition takes every write of every live request (a GSI partition key value lives on one
partition: 1,000 WCU/s and 3,000 RCU/s at most). The sweep's queries read every shard and
merge them in ``due_at`` order. Items written before the index was sharded carry the bare
``DUE`` / ``OWED``: that value is read as one more shard, and an item moves to its shard the
next time it is written, so a deploy needs no migration (see :data:`LEGACY_DUE_KEYS`).

One more item belongs to the sweep: ``SWEEP / VERIFY_CURSOR``, where reconcile's rotation over
the live grants has got to (:meth:`DynamoStore.verify_cursor`).

Every status change is one transaction: a Put of the record conditioned on the
version it was read at, plus a Put of its audit event that may not exist yet.
"""

from __future__ import annotations

import heapq
import itertools
import json
import zlib
from datetime import datetime, timedelta
from typing import Any, Iterable, Iterator, Sequence

from ..domain.errors import AlreadyDelivered, Conflict
from ..domain.model import AuditEvent, Principal, Request, iso_z, parse_iso, utc
from ..ports import Delivery, Owed, Trail
from .activity_items import ActivityItems
from .alert_calls import AlertCalls
from .alert_items import AlertItems, _key, _s, day_keys
from .path_items import PathItems
from ..domain.timing import due_at, grant_window_end

__all__ = ["DUE_SHARDS", "Conflict", "DynamoStore", "create_table_from_template", "due_key", "event_item",
           "request_item"]

#: How many values the ``due`` index's partition key is spread over, for records (``DUE#<n>``)
#: and for what they owe people (``OWED#<n>``). One value takes at most one index partition's
#: writes, 1,000 WCU/s; a grant's lifecycle writes the index about 21 times, ~25 WCU. So one
#: key carries ~2,400 new grants a minute (1,000 x 60 / 25) and 8 keys ~19,200, while every
#: read of the index costs 8 Query calls (+1 for the legacy key) instead of one
#: (docs/ARCHITECTURE.md, "The sweep's cost").
DUE_SHARDS = 8
#: The un-sharded values written before the index was sharded. Read as one more shard until
#: no item carries them any more: a record is rewritten with its shard at its next change
#: (every live record changes or ends within its pending window or its grant's duration, at
#: most 7 days), an owed message at its next retry or when it is settled.
LEGACY_DUE_KEYS = {"DUE": "DUE", "OWED": "OWED"}


def shard_of(request_id: str) -> int:
    """The request's shard of the ``due`` index: stable across processes and deploys
    (CRC-32, not Python's salted ``hash``)."""
    return zlib.crc32(request_id.encode("utf-8")) % DUE_SHARDS


def due_key(kind: str, request_id: str) -> str:
    """``DUE#<n>`` for a request's record, ``OWED#<n>`` for what it owes people."""
    return f"{kind}#{shard_of(request_id)}"


def request_item(req: Request) -> dict:
    item: dict[str, Any] = {
        **_key(f"REQ#{req.request_id}", "REQUEST"),
        "doc": _s(req.to_json()),
        "status": _s(req.status.value),
        "grant_status": _s(req.grant_status.value),
        "version": {"N": str(req.version)},
        "created_at": _s(iso_z(req.created_at)),
    }
    if req.is_open:
        item["open_pk"] = _s(f"OPEN#{req.requester}")
    if (due := due_at(req)) is not None:
        item["due_pk"] = _s(due_key("DUE", req.request_id))
        item["due_at"] = _s(iso_z(due))
    if (end := grant_window_end(req)) is not None:
        item["grant_pk"] = _s(f"GRANT#{req.principal.key}")
        item["grant_sk"] = _s(f"{iso_z(end)}#{req.request_id}")
    return item


def event_item(event: AuditEvent) -> dict:
    return {
        **_key(f"REQ#{event.request_id}", f"EVENT#{event.seq:06d}"),
        "doc": _s(event.to_json()),
        **day_keys(event.at, f"{event.request_id}#{event.seq:06d}"),
    }


def _request(item: dict) -> Request:
    return Request.from_json(item["doc"]["S"])


#: the first retry of an undelivered message, if its own job did not deliver it
OWED_RETRY_AFTER = timedelta(minutes=1)


def _owed(item: dict) -> Owed:
    return Owed(request_id=item["PK"]["S"][len("REQ#"):], key=item["SK"]["S"][len("OWE#"):],
                job=json.loads(item["job"]["S"]), version=int(item["version"]["N"]),
                attempts=int(item.get("attempts", {}).get("N", "0")),
                due_at=parse_iso(item["due_at"]["S"]))


class DynamoStore(AlertItems, AlertCalls, ActivityItems, PathItems):
    def __init__(self, client, table: str):
        self._db = client
        self._table = table

    # -- requests ------------------------------------------------------------
    def create(self, req: Request, event: AuditEvent, owed: Sequence[tuple[str, dict]] = (),
               claim: str | None = None) -> None:
        """Store a new request (and what it owes people); Conflict if the id is taken,
        AlreadyDelivered if ``claim`` was already made (then nothing is written)."""
        self._transact(
            {"Put": {"TableName": self._table, "Item": _claimed(request_item(req), claim),
                     "ConditionExpression": "attribute_not_exists(PK)"}},
            event, self._owed_puts(req, event.at, owed), self._claim_put(claim, req.request_id, event.at),
        )

    def transition(self, before: Request, after: Request, event: AuditEvent,
                   owed: Sequence[tuple[str, dict]] = (), claim: str | None = None) -> None:
        """Replace ``before`` by ``after`` only if nobody changed it since it was read; in
        the same transaction, record the messages this change owes people (``owed``:
        (key, job) pairs, delivered by the jobs and retried by the sweep until settled)."""
        if after.version != before.version + 1:
            raise ValueError("a transition must bump the version by one")
        self._transact(
            {"Put": {"TableName": self._table, "Item": _claimed(request_item(after), claim),
                     "ConditionExpression": "version = :v",
                     "ExpressionAttributeValues": {":v": {"N": str(before.version)}}}},
            event, self._owed_puts(after, event.at, owed), self._claim_put(claim, after.request_id, event.at),
        )

    def _claim_put(self, claim: str | None, request_id: str, at: datetime) -> dict | None:
        if not claim:
            return None
        return {"Put": {"TableName": self._table, "Item": _once_item(claim, at, request_id),
                        "ConditionExpression": "attribute_not_exists(PK)"}}

    def _owed_puts(self, req: Request, at: datetime, owed: Sequence[tuple[str, dict]]) -> list[dict]:
        return [{"Put": {"TableName": self._table, "Item": {
            **_key(f"REQ#{req.request_id}", f"OWE#{key}"), "job": _s(json.dumps(job)),
            "version": {"N": str(req.version)}, "attempts": {"N": "0"},
            "due_pk": _s(due_key("OWED", req.request_id)), "due_at": _s(iso_z(at + OWED_RETRY_AFTER)),
            "open_pk": _s(f"OPEN#{req.requester}"), "created_at": _s(iso_z(at)),
        }}} for key, job in owed]

    def _transact(self, put: dict, event: AuditEvent, more: Sequence[dict] = (), claim: dict | None = None) -> None:
        """One transaction: the record, its audit event, what it owes, and (last) the
        delivery claim. A lost answer retried by botocore finds its own claim: AlreadyDelivered."""
        from botocore.exceptions import ClientError

        items = [put, {"Put": {"TableName": self._table, "Item": event_item(event),
                               "ConditionExpression": "attribute_not_exists(PK)"}}, *more]
        if claim is not None:
            items.append(claim)
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code not in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if claim is not None and len(reasons) == len(items) and \
                    reasons[-1].get("Code") == "ConditionalCheckFailed":
                raise AlreadyDelivered(claim["Put"]["Item"]["PK"]["S"][len("ONCE#"):]) from exc
            raise Conflict(str(exc)) from exc

    def get(self, request_id: str, claim: str | None = None) -> Request | None:
        """The request; AlreadyDelivered if its current version was written by ``claim``."""
        resp = self._db.get_item(TableName=self._table, Key=_key(f"REQ#{request_id}", "REQUEST"),
                                 ConsistentRead=True)
        item = resp.get("Item")
        return _request(_unclaimed(item, claim)) if item else None

    def history(self, request_id: str) -> list[AuditEvent]:
        items = self._query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :sk)",
            ExpressionAttributeValues={":pk": _s(f"REQ#{request_id}"), ":sk": _s("EVENT#")},
            ConsistentRead=True,
        )
        return [AuditEvent.from_json(i["doc"]["S"]) for i in items]

    def events_between(self, start: datetime, end: datetime) -> Trail:
        """The audit trail in ``[start, end)`` (second precision, UTC) from the ``by_day``
        index: every audit event and every denied attempt of the alert path, oldest first.
        One Query (paginated) per UTC day the window touches: the cost follows the window
        and what happened in it, never the table's history."""
        start, end = utc(start), utc(end)
        events: list[AuditEvent] = []
        attempts: list[dict] = []
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            for page in self._pages(IndexName="by_day",
                                    KeyConditionExpression="day_pk = :d AND day_sk BETWEEN :a AND :b",
                                    ExpressionAttributeValues={":d": _s(f"DAY#{day:%Y-%m-%d}"),
                                                               ":a": _s(iso_z(start)), ":b": _s(iso_z(end))}):
                for item in page:
                    if item["PK"]["S"].startswith("ALERT#"):
                        attempts.append(json.loads(item["doc"]["S"]))
                    else:
                        events.append(AuditEvent.from_json(item["doc"]["S"]))
            day += timedelta(days=1)
        return Trail(events, attempts)

    def open_for(self, person: str, claim: str | None = None) -> list[Request]:
        """Pending requests and live grants of one person (sparse index); AlreadyDelivered
        if one of them was last written by ``claim`` (a repeat of the command that made it)."""
        items = self._query(
            IndexName="open_by_person",
            KeyConditionExpression="open_pk = :p",
            ExpressionAttributeValues={":p": _s(f"OPEN#{person}")},
        )
        return [r for r in map(_request, (_unclaimed(i, claim) for i in items if i["SK"]["S"] == "REQUEST"))
                if r.is_open]

    # -- what people are owed (an outbox, written with the change that owes it) ------------
    def owed_for(self, person: str) -> list[Owed]:
        """Messages about this person's requests that are not delivered yet."""
        items = self._query(
            IndexName="open_by_person",
            KeyConditionExpression="open_pk = :p",
            ExpressionAttributeValues={":p": _s(f"OPEN#{person}")},
        )
        return [_owed(i) for i in items if i["SK"]["S"].startswith("OWE#")]

    def owe(self, request_id: str, key: str, job: dict, at: datetime, version: int = 0,
            person: str | None = None) -> None:
        """Record a message owed outside a change of state (a drift notice found by the
        sweep), before the change to IAM it reports is made."""
        item = {**_key(f"REQ#{request_id}", f"OWE#{key}"), "job": _s(json.dumps(job)),
                "version": {"N": str(version)}, "attempts": {"N": "0"},
                "due_pk": _s(due_key("OWED", request_id)), "due_at": _s(iso_z(at + OWED_RETRY_AFTER)),
                "created_at": _s(iso_z(at))}
        if person:
            item["open_pk"] = _s(f"OPEN#{person}")
        self._db.put_item(TableName=self._table, Item=item)

    def owed_due(self, now: datetime, limit: int = 200) -> list[Owed]:
        """Undelivered messages whose next try has come (the sweep's share of the outbox),
        oldest first across every shard, at most ``limit``."""
        return [_owed(i) for i in self._due_index("OWED", now, limit)]

    def settle(self, request_id: str, key: str, version: int) -> None:
        """Delivered: forget what was owed, unless a newer change owes it again."""
        from botocore.exceptions import ClientError

        try:
            self._db.delete_item(TableName=self._table, Key=_key(f"REQ#{request_id}", f"OWE#{key}"),
                                 ConditionExpression="attribute_not_exists(PK) OR version <= :v",
                                 ExpressionAttributeValues={":v": {"N": str(version)}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def retry_later(self, owed: Owed, at: datetime) -> None:
        """Not delivered this time: try again at ``at`` (if it is still owed). The item is
        (re)keyed to its shard of the ``due`` index, so a legacy un-sharded one moves too."""
        from botocore.exceptions import ClientError

        try:
            self._db.update_item(
                TableName=self._table, Key=_key(f"REQ#{owed.request_id}", f"OWE#{owed.key}"),
                UpdateExpression="SET due_at = :at, due_pk = :d, attempts = attempts + :one",
                ConditionExpression="attribute_exists(PK) AND version = :v",
                ExpressionAttributeValues={":at": _s(iso_z(at)), ":one": {"N": "1"},
                                           ":d": _s(due_key("OWED", owed.request_id)),
                                           ":v": {"N": str(owed.version)}})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    # -- messages sent at most once, even when Slack's answer was lost ----------------------
    def begin_delivery(self, scope: str, kind: str, now: datetime) -> Delivery:
        """Start (or find) the one delivery of message ``kind`` for ``scope`` (a request id
        or an alert key). ``first`` is True for the first attempt only."""
        import uuid

        key = _key(f"MSG#{scope}", f"MSG#{kind}")
        token = uuid.uuid4().hex  # if the answer to our own put is lost, the retry recognises it
        if self._put_new({**key, "started_at": _s(iso_z(now)), "attempt": _s(token),
                          "ttl": {"N": str(int((utc(now) + timedelta(days=400)).timestamp()))}}):
            return Delivery(True, utc(now), None, None)
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item") or {}
        if item.get("attempt", {}).get("S") == token and not item.get("ts"):
            return Delivery(True, utc(now), None, None)  # it was our own write after all
        started = item.get("started_at", {}).get("S")
        return Delivery(False, parse_iso(started) if started else utc(now),
                        item.get("channel", {}).get("S"), item.get("ts", {}).get("S"))

    def delivery(self, scope: str, kind: str) -> Delivery | None:
        """The delivery of ``kind`` for ``scope`` as recorded, without starting one."""
        item = self._db.get_item(TableName=self._table, Key=_key(f"MSG#{scope}", f"MSG#{kind}"),
                                 ConsistentRead=True).get("Item")
        if not item:
            return None
        return Delivery(False, parse_iso(item["started_at"]["S"]), item.get("channel", {}).get("S"),
                        item.get("ts", {}).get("S"))

    def finish_delivery(self, scope: str, kind: str, channel: str, ts: str) -> None:
        """The message is in Slack as ``channel``/``ts``: no attempt will post it again."""
        self._db.update_item(TableName=self._table, Key=_key(f"MSG#{scope}", f"MSG#{kind}"),
                             UpdateExpression="SET channel = :c, ts = :t",
                             ExpressionAttributeValues={":c": _s(channel), ":t": _s(ts)})

    def due(self, now: datetime, limit: int = 500) -> list[Request]:
        """Requests whose next sweep time has come, oldest first across every shard (sparse
        index), at most ``limit``."""
        return [_request(i) for i in self._due_index("DUE", now, limit)]

    def live(self) -> list[Request]:
        """Every request the sweep still tracks (pending, granting, active, revoking), in
        ``due_at`` order across every shard."""
        return [_request(i) for i in self._due_index("DUE")]

    def _due_index(self, kind: str, now: datetime | None = None, limit: int | None = None) -> list[dict]:
        """The ``due`` index's items of ``kind`` ("DUE" or "OWED"; due by ``now`` if given),
        every shard and the legacy un-sharded key merged in (due_at, PK, SK) order, at most
        ``limit``. One Query per shard; a shard's next page (of ``limit`` items at most) is
        read only if the merge gets that far, so at most (shards + 1) x ``limit`` items are
        read however much is due."""
        keys = [f"{kind}#{n}" for n in range(DUE_SHARDS)] + [LEGACY_DUE_KEYS[kind]]
        condition = "due_pk = :d" + (" AND due_at <= :now" if now is not None else "")

        def shard(key: str) -> Iterator[dict]:
            values = {":d": _s(key), **({":now": _s(iso_z(now))} if now is not None else {})}
            page = {"Limit": limit} if limit is not None else {}
            for items in self._pages(IndexName="due", KeyConditionExpression=condition,
                                     ExpressionAttributeValues=values, **page):
                yield from items

        def order(item: dict) -> tuple[str, str, str]:
            return item["due_at"]["S"], item["PK"]["S"], item["SK"]["S"]

        shards: list[Iterable[dict]] = [shard(k) for k in keys]
        return list(itertools.islice(heapq.merge(*shards, key=order), limit))

    # -- the sweep's rotation over live grants (reconcile verifies a slice of them a run) ----
    def verify_cursor(self) -> tuple[str, int]:
        """Where reconcile's rotation has got to: (the last request id whose holders it
        verified, the cursor's version); ("", 0) before the first run."""
        item = self._db.get_item(TableName=self._table, Key=_key("SWEEP", "VERIFY_CURSOR"),
                                 ConsistentRead=True).get("Item")
        if not item:
            return "", 0
        return item["cursor"]["S"], int(item["version"]["N"])

    def move_verify_cursor(self, cursor: str, version: int) -> bool:
        """Move the rotation on to ``cursor`` if nobody moved it since ``version`` was read.
        False if somebody did (a sweep that ran at the same time): theirs stands, and at
        worst a slice is verified twice - a cursor only moves past grants verified."""
        from botocore.exceptions import ClientError

        try:
            self._db.update_item(
                TableName=self._table, Key=_key("SWEEP", "VERIFY_CURSOR"),
                UpdateExpression="SET #c = :c, version = :next",
                ConditionExpression="attribute_not_exists(PK)" if version == 0 else "version = :v",
                ExpressionAttributeNames={"#c": "cursor"},
                ExpressionAttributeValues={":c": _s(cursor), ":next": {"N": str(version + 1)},
                                           **({":v": {"N": str(version)}} if version else {})})
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def grants_ending_after(self, principal: Principal, at: datetime) -> list[Request]:
        """Grants of ``principal`` whose usable window ends at or after ``at``. The index
        partition also holds the principal's first-use markers and burst digests (no
        record in them): only the records are read."""
        items = self._query(
            IndexName="grants_by_user",
            KeyConditionExpression="grant_pk = :g AND grant_sk >= :t",
            ExpressionAttributeValues={":g": _s(f"GRANT#{principal.key}"), ":t": _s(iso_z(at))},
        )
        return [_request(i) for i in items if i["SK"]["S"] == "REQUEST"]

    def _query(self, max_items: int | None = None, **kwargs) -> list[dict]:
        out: list[dict] = []
        for page in self._pages(**kwargs):
            out.extend(page)
            if max_items is not None and len(out) >= max_items:
                return out[:max_items]
        return out

    def _pages(self, **kwargs) -> Iterator[list[dict]]:
        while True:
            resp = self._db.query(TableName=self._table, **kwargs)
            yield resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    # -- the approval card -------------------------------------------------------
    def save_card(self, request_id: str, channel: str, ts: str) -> bool:
        """Remember the card's message; False if one was already recorded."""
        return self._put_new({**_key(f"REQ#{request_id}", "CARD"),
                              "channel": _s(channel), "ts": _s(ts)})

    def card(self, request_id: str) -> tuple[str, str] | None:
        resp = self._db.get_item(TableName=self._table, Key=_key(f"REQ#{request_id}", "CARD"),
                                 ConsistentRead=True)
        item = resp.get("Item")
        return (item["channel"]["S"], item["ts"]["S"]) if item else None

    # -- idempotent deliveries ------------------------------------------------------
    # -- short leases (one writer of a role's cut-off policy at a time) --------------------
    def take_lease(self, key: str, token: str, now: datetime, lease: timedelta) -> dict | None:
        """Hold ``key`` until ``now + lease`` if nobody else holds it now (or theirs ran out);
        the data its last holder left ({} if none). Taking it again with the same token renews
        it (a retried write whose answer was lost). An update, so the data outlives holders."""
        from botocore.exceptions import ClientError

        try:
            resp = self._db.update_item(
                TableName=self._table, Key=_key(f"LEASE#{key}", "LEASE"),
                UpdateExpression="SET #token = :token, #until = :until, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(#token) OR #until < :now OR #token = :token",
                ExpressionAttributeNames={"#until": "until", "#token": "token", "#ttl": "ttl"},
                ExpressionAttributeValues={":now": _s(iso_z(now)), ":token": _s(token),
                                           ":until": _s(iso_z(now + lease)),
                                           ":ttl": {"N": str(int((utc(now) + timedelta(days=2)).timestamp()))}},
                ReturnValues="ALL_NEW")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        data = resp.get("Attributes", {}).get("data")
        return json.loads(data["S"]) if data else {}

    def release_lease(self, key: str, token: str, data: dict | None = None) -> None:
        """Give the lease back if it is still ours (a later holder's stays), leaving ``data``."""
        from botocore.exceptions import ClientError

        sets, values = "", {":token": _s(token)}
        if data is not None:
            sets, values = "SET #data = :data ", {**values, ":data": _s(json.dumps(data, separators=(",", ":")))}
        try:
            self._db.update_item(TableName=self._table, Key=_key(f"LEASE#{key}", "LEASE"),
                                 UpdateExpression=f"{sets}REMOVE #token, #until",
                                 ConditionExpression="#token = :token",
                                 ExpressionAttributeNames={"#token": "token", "#until": "until",
                                                           **({"#data": "data"} if data is not None else {})},
                                 ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def first_delivery(self, key: str, now: datetime) -> tuple[bool, str | None]:
        """(True, None) the first time ``key`` is claimed (here or riding a write); afterwards
        (False, the request id the claiming write changed, if any)."""
        if self._put_new(_once_item(key, now)):
            return True, None
        resp = self._db.get_item(TableName=self._table, Key=_key(f"ONCE#{key}", "ONCE"), ConsistentRead=True)
        return False, resp.get("Item", {}).get("request_id", {}).get("S")

    def _put_new(self, item: dict) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._db.put_item(TableName=self._table, Item=item,
                              ConditionExpression="attribute_not_exists(PK)")
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise


def _claimed(item: dict, claim: str | None) -> dict:
    """A request item that remembers which delivery wrote this version of it, so that a
    repeat is recognised by the read it makes anyway (no read of its own)."""
    return {**item, "claim": _s(claim)} if claim else item


def _unclaimed(item: dict, claim: str | None) -> dict:
    if claim and item.get("claim", {}).get("S") == claim:
        raise AlreadyDelivered(claim)
    return item


def _once_item(key: str, at: datetime, request_id: str | None = None) -> dict:
    """A delivery claim (``ONCE#<key>``), kept a day: Slack redelivers within minutes."""
    item = {**_key(f"ONCE#{key}", "ONCE"), "ttl": {"N": str(int((utc(at) + timedelta(days=1)).timestamp()))}}
    if request_id:
        item["request_id"] = _s(request_id)
    return item


def create_table_from_template(client, table: str, template_path: str) -> None:
    """Create the table from its CloudFormation declaration (tests, demo, local tools)."""
    with open(template_path) as fh:
        template = json.load(fh)
    (resource,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table"]
    props = resource["Properties"]
    kwargs = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode",
                                    "GlobalSecondaryIndexes") if k in props}
    client.create_table(TableName=table, **kwargs)
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1})
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
