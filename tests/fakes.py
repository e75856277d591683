"""In-memory fakes of the three ports (``chalicelib/ports.py``), a settable clock, and
``make_service`` that wires them into the real facade (``chalicelib.service.Drawbridge``).

The fakes behave like the real adapters, not like mocks: they keep state and answer from
it, so tests assert what the world looks like afterwards (records, history, IAM policies,
Slack messages), never which method was called.

* :class:`InMemoryStore` - :class:`~chalicelib.adapters.store.DynamoStore`'s semantics:
  ``create`` / ``transition`` are conditional (domain ``Conflict``) and write the record
  and its audit event together; the queries follow the table's sparse indexes, keyed
  and ordered as DynamoDB keys them (second-precision ISO strings from ``iso_z``, built
  with the same ``due_at`` / ``grant_window_end`` / ``Request.is_open``; the ``due``
  index's shards are the adapter's business: its queries read them all, so one ordered
  index is what both answer); claims are True the first time and False afterwards; the
  sweep's rotation cursor moves only from the version read. Records go through the domain's JSON codec
  on the way in and out, as they do in DynamoDB. ``tests/service/test_fakes_contract.py``
  runs the same assertions against this and the real adapter on moto.
* :class:`FakeGrants` - :class:`~chalicelib.adapters.iam.IamGrants` for principals of kind
  ``iam_user``: managed policies with their documents and attached users, the per-user
  limit (``GrantLimitReached``), idempotent create/attach/detach/delete, IAM's
  ``DeleteConflict`` for a policy still attached, MFA devices.
* :class:`FakeNotifier` - Slack's Web API as the notifier uses it: posts, in-place updates
  (earlier versions kept in ``history``), ephemerals, DMs (a post to a user id lands in
  the DM channel ``"D" + user[1:]``, as Slack answers it). With ``rate_limit=(per_second,
  burst)`` and a clock it models Slack's ~1 message a second per channel as the stand-in
  does (local/slack_standin.py): ``try_post`` / ``try_update`` beyond it raise
  ``RateLimited`` with the Retry-After and change nothing; ``writes`` lists every post and
  update that landed with its (fake) time.

Every fake takes ``fail_next(method, exc, times=1)`` (the next call(s) of a port method
raise ``exc`` before doing anything) and ``before_next(method, action)`` (run ``action()``
just before the next call does its work: e.g. let another approver's click land between a
read and a conditional write, so the write loses for real).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from chalicelib import policy as pol
from chalicelib.domain import errors as _errors
from chalicelib.domain.errors import AlreadyDelivered, Conflict, GrantLimitReached
from chalicelib.domain.model import AuditEvent, Principal, Request, iso_z, parse_iso, utc
from chalicelib.domain.timing import due_at, grant_window_end
from chalicelib.ports import AlertContext, CallClaim, Delivery, DigestJoin, Owed, Trail

__all__ = ["SAMPLE_CATALOG", "T0", "DeleteConflict", "FakeClock", "FakeGrants", "FakeNotifier",
           "FakePolicy", "InMemoryStore", "Message", "MessageNotFound", "NoSuchEntity",
           "make_service", "sequential_ids"]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CATALOG = ROOT / "policies" / "access.toml"
#: the day the fixtures tell their story on (tests/fixtures/README.md)
T0 = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)


# --------------------------------------------------------------------------- failure injection


class _Faults:
    """``fail_next`` / ``before_next`` for the public methods of a fake."""

    def __init__(self) -> None:
        self._hooks: dict[str, list[BaseException | Callable[[], Any]]] = {}

    def fail_next(self, method: str, exc: BaseException, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` raise ``exc`` and change nothing."""
        self._known(method)
        self._hooks.setdefault(method, []).extend([exc] * times)

    def before_next(self, method: str, action: Callable[[], Any]) -> None:
        """Run ``action()`` when ``method`` is next called, before it does anything
        (``action`` may call this fake again; it does not trigger itself)."""
        self._known(method)
        self._hooks.setdefault(method, []).append(action)

    def clear_faults(self) -> None:
        """Forget injected faults and actions not used yet (the outage is over)."""
        self._hooks.clear()

    def pending_faults(self) -> dict[str, int]:
        """Injected faults and actions not used yet (a test may assert none are left)."""
        return {m: len(q) for m, q in self._hooks.items() if q}

    def _known(self, method: str) -> None:
        if method.startswith("_") or not callable(getattr(self, method, None)):
            raise AttributeError(f"{type(self).__name__} has no port method {method!r}")

    def _hook(self, method: str) -> None:
        queue = self._hooks.get(method)
        if not queue:
            return
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        item()


# --------------------------------------------------------------------------- clock


class FakeClock:
    """A clock that stands still until told: aware UTC, settable and advanceable."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = utc(now)

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> datetime:
        self.now = utc(when)
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """``advance(timedelta(minutes=2))`` or ``advance(minutes=2)``."""
        self.now = self.now + (delta if delta is not None else timedelta(**kwargs))
        return self.now


# --------------------------------------------------------------------------- store


#: a path item's fields, none set (chalicelib/adapters/path_items.py)
_NO_PATH_FIELDS = dict.fromkeys(("last_seen", "silent_since", "silent_batch", "silent_posted", "restored_at",
                                 "restore_batch", "expected_since", "unheard_posted", "heard_at"))


class InMemoryStore(_Faults):
    """The table, in memory (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._requests: dict[str, str] = {}  # request id -> Request JSON (the item's ``doc``)
        self._events: dict[tuple[str, int], str] = {}  # (request id, seq) -> AuditEvent JSON
        self._cards: dict[str, tuple[str, str]] = {}
        self._sent: set[tuple[str, str]] = set()
        self._alerts: dict[str, dict] = {}  # key -> {"doc": JSON, "ttl": epoch seconds}
        self._once: dict[str, dict] = {}  # key -> {"ttl": ..., "request_id": ...}
        self._claims: dict[str, str | None] = {}  # request id -> the delivery that wrote its version
        self._used: dict[str, tuple[str, str]] = {}  # request id -> (principal key, index sort key)
        self._digests: dict[str, dict] = {}  # burst digest key -> its item
        self._groups: dict[str, dict] = {}  # failed-attempt group key -> its item
        self._activity: dict[str, str] = {}  # request id -> its activity tally (JSON)
        self._activity_claims: dict[str, str] = {}  # CloudTrail eventID -> the request it counted under
        self._paths: dict[tuple[str, str], dict] = {}  # (account, region) -> the alert path's heartbeat item
        self._owed: dict[tuple[str, str], Owed] = {}  # (request id, key) -> what is owed
        self._owed_person: dict[tuple[str, str], str] = {}  # (request id, key) -> requester (the index key)
        self._deliveries: dict[tuple[str, str], Delivery] = {}
        self._cursor: tuple[str, int] = ("", 0)  # reconcile's rotation: (last id verified, version)
        self.leases: dict[str, tuple[str | None, datetime, dict]] = {}  # key -> (holder's token, until, data)

    # -- requests ---------------------------------------------------------------
    def create(self, req: Request, event: AuditEvent, owed=(), claim: str | None = None) -> None:
        self._hook("create")
        if claim and claim in self._once:  # checked first, as the adapter reads the claim's reason first
            raise AlreadyDelivered(claim)
        if req.request_id in self._requests or (event.request_id, event.seq) in self._events:
            raise Conflict(f"{req.request_id} already exists")
        self._write(req, event)
        self._owe(req, event.at, owed)
        self._claim(claim, req.request_id, event.at)

    def transition(self, before: Request, after: Request, event: AuditEvent, owed=(),
                   claim: str | None = None) -> None:
        self._hook("transition")
        if after.version != before.version + 1:
            raise ValueError("a transition must bump the version by one")
        if claim and claim in self._once:
            raise AlreadyDelivered(claim)
        stored = self._requests.get(after.request_id)
        if stored is None or Request.from_json(stored).version != before.version:
            raise Conflict(f"{after.request_id} changed since version {before.version} was read")
        if (event.request_id, event.seq) in self._events:
            raise Conflict(f"{event.request_id} already has event {event.seq}")
        self._write(after, event)
        self._owe(after, event.at, owed)
        self._claim(claim, after.request_id, event.at)

    def _claim(self, claim: str | None, request_id: str, at: datetime) -> None:
        self._claims[request_id] = claim  # which delivery wrote this version (None: no delivery)
        if claim:
            self._once[claim] = {"ttl": int((utc(at) + timedelta(days=1)).timestamp()), "request_id": request_id}

    def _owe(self, req: Request, at: datetime, owed) -> None:
        from chalicelib.adapters.store import OWED_RETRY_AFTER

        for key, job in owed:
            self._owed[(req.request_id, key)] = Owed(req.request_id, key, _as_json(job), req.version, 0,
                                                     at + OWED_RETRY_AFTER)
            self._owed_person[(req.request_id, key)] = req.requester

    # -- the outbox -----------------------------------------------------------------------
    def owed_for(self, person: str) -> list[Owed]:
        self._hook("owed_for")
        return [o for k, o in sorted(self._owed.items()) if self._owed_person.get(k) == person]

    def owe(self, request_id: str, key: str, job: dict, at: datetime, version: int = 0,
            person: str | None = None) -> None:
        from chalicelib.adapters.store import OWED_RETRY_AFTER

        self._hook("owe")
        self._owed[(request_id, key)] = Owed(request_id, key, _as_json(job), version, 0, at + OWED_RETRY_AFTER)
        if person:
            self._owed_person[(request_id, key)] = person
        else:  # a put replaces the item: no index key unless given
            self._owed_person.pop((request_id, key), None)

    def owed_due(self, now: datetime, limit: int = 200) -> list[Owed]:
        self._hook("owed_due")
        due = sorted((o for o in self._owed.values() if o.due_at.replace(microsecond=0) <= now),
                     key=lambda o: (o.due_at, o.request_id, o.key))
        return due[:limit]

    def settle(self, request_id: str, key: str, version: int) -> None:
        self._hook("settle")
        owed = self._owed.get((request_id, key))
        if owed is not None and owed.version <= version:
            del self._owed[(request_id, key)]

    def retry_later(self, owed: Owed, at: datetime) -> None:
        self._hook("retry_later")
        current = self._owed.get((owed.request_id, owed.key))
        if current is not None and current.version == owed.version:
            self._owed[(owed.request_id, owed.key)] = dataclasses.replace(
                current, due_at=at, attempts=current.attempts + 1)

    @property
    def owed(self) -> list[Owed]:
        return list(self._owed.values())

    # -- deliveries -----------------------------------------------------------------------
    def begin_delivery(self, scope: str, kind: str, now: datetime) -> Delivery:
        self._hook("begin_delivery")
        found = self._deliveries.get((scope, kind))
        if found is None:
            self._deliveries[(scope, kind)] = Delivery(False, now, None, None)
            return Delivery(True, now, None, None)
        return found

    def delivery(self, scope: str, kind: str) -> Delivery | None:
        self._hook("delivery")
        return self._deliveries.get((scope, kind))

    def finish_delivery(self, scope: str, kind: str, channel: str, ts: str) -> None:
        self._hook("finish_delivery")
        current = self._deliveries.get((scope, kind)) or Delivery(False, datetime.now(timezone.utc), None, None)
        self._deliveries[(scope, kind)] = dataclasses.replace(current, channel=channel, ts=ts)

    def _write(self, req: Request, event: AuditEvent) -> None:
        # Both items or neither, like the adapter's transaction (both encoded before either lands).
        doc, ev = req.to_json(), event.to_json()
        self._requests[req.request_id] = doc
        self._events[(event.request_id, event.seq)] = ev

    def get(self, request_id: str, claim: str | None = None) -> Request | None:
        self._hook("get")
        doc = self._requests.get(request_id)
        self._unclaimed(request_id, claim)
        return Request.from_json(doc) if doc is not None else None

    def _unclaimed(self, request_id: str, claim: str | None) -> None:
        if claim and self._claims.get(request_id) == claim:
            raise AlreadyDelivered(claim)

    def history(self, request_id: str) -> list[AuditEvent]:
        self._hook("history")
        return [AuditEvent.from_json(doc) for (rid, _), doc in sorted(self._events.items()) if rid == request_id]

    def events_between(self, start: datetime, end: datetime) -> Trail:
        """The ``by_day`` index: audit events and denied attempts keyed as the adapter keys
        them (``day_sk``), those in ``[start, end)`` at second precision, oldest first."""
        from chalicelib.adapters.alert_items import attempt_day_keys, day_keys

        self._hook("events_between")
        low, high = iso_z(start), iso_z(end)
        found = []
        for (rid, seq), doc in self._events.items():
            event = AuditEvent.from_json(doc)
            found.append((day_keys(event.at, f"{rid}#{seq:06d}")["day_sk"]["S"], "event", event))
        for key, item in self._alerts.items():
            keys = attempt_day_keys(key, json.loads(item["doc"]))
            if keys:
                found.append((keys["day_sk"]["S"], "attempt", json.loads(item["doc"])))
        found = sorted((f for f in found if low <= f[0] <= high), key=lambda f: f[0])
        return Trail([f[2] for f in found if f[1] == "event"], [f[2] for f in found if f[1] == "attempt"])

    def _all(self) -> list[Request]:
        return [Request.from_json(doc) for doc in self._requests.values()]

    # The sparse indexes: an item is in an index only when the adapter's request_item()
    # gives it that index's keys; results come in the index's sort-key order (ties: by id).
    def open_for(self, person: str, claim: str | None = None) -> list[Request]:
        self._hook("open_for")
        found = [r for r in self._all() if r.is_open and r.requester == person]
        for r in found:
            self._unclaimed(r.request_id, claim)
        return sorted(found, key=lambda r: (iso_z(r.created_at), r.request_id))

    def due(self, now: datetime, limit: int = 500) -> list[Request]:
        self._hook("due")
        cutoff = iso_z(now)
        return [r for key, r in self._due_index() if key <= cutoff][:limit]

    def live(self) -> list[Request]:
        self._hook("live")
        return [r for _, r in self._due_index()]

    def _due_index(self) -> list[tuple[str, Request]]:
        keyed = [(iso_z(at), r) for r in self._all() if (at := due_at(r)) is not None]
        return sorted(keyed, key=lambda kr: (kr[0], kr[1].request_id))

    def verify_cursor(self) -> tuple[str, int]:
        self._hook("verify_cursor")
        return self._cursor

    def move_verify_cursor(self, cursor: str, version: int) -> bool:
        self._hook("move_verify_cursor")
        if self._cursor[1] != version:
            return False
        self._cursor = (cursor, version + 1)
        return True

    def grants_ending_after(self, principal: Principal, at: datetime) -> list[Request]:
        self._hook("grants_ending_after")
        keyed = [(f"{iso_z(end)}#{r.request_id}", r) for r in self._all()
                 if r.principal.key == principal.key and (end := grant_window_end(r)) is not None]
        return [r for sk, r in sorted(keyed, key=lambda kr: kr[0]) if sk >= iso_z(at)]

    # -- the approval card --------------------------------------------------------
    def take_lease(self, key: str, token: str, now: datetime, lease: timedelta) -> dict | None:
        self._hook("take_lease")
        held = self.leases.get(key)
        if held is not None and held[0] not in (token, None) and held[1] >= now:
            return None
        self.leases[key] = (token, now + lease, held[2] if held else {})
        return copy.deepcopy(self.leases[key][2])

    def release_lease(self, key: str, token: str, data: dict | None = None) -> None:
        self._hook("release_lease")
        held = self.leases.get(key)
        if held is not None and held[0] == token:
            self.leases[key] = (None, held[1], copy.deepcopy(data) if data is not None else held[2])

    def save_card(self, request_id: str, channel: str, ts: str) -> bool:
        self._hook("save_card")
        if request_id in self._cards:
            return False
        self._cards[request_id] = (channel, ts)
        return True

    def card(self, request_id: str) -> tuple[str, str] | None:
        self._hook("card")
        return self._cards.get(request_id)

    # -- the alert path's heartbeats ----------------------------------------------------
    def path_beat(self, account: str, region: str, now: datetime) -> dict:
        self._hook("path_beat")
        path = self._paths.setdefault((account, region), {
            **_NO_PATH_FIELDS, "account": account, "region": region})
        if path["last_seen"] is None or path["last_seen"] < iso_z(now):
            path["last_seen"] = iso_z(now)
        return dict(path)

    def path_create(self, account: str, region: str, fields: dict) -> bool:
        self._hook("path_create")
        if (account, region) in self._paths:
            return False
        self._paths[(account, region)] = {**_NO_PATH_FIELDS, "account": account, "region": region, **fields}
        return True

    def path_delete(self, account: str, region: str, *, expect: dict) -> bool:
        self._hook("path_delete")
        path = self._paths.get((account, region))
        if path is None or any(path.get(f) != v for f, v in expect.items()):
            return False
        del self._paths[(account, region)]
        return True

    def paths(self) -> list[dict]:
        self._hook("paths")
        return [dict(p) for _, p in sorted(self._paths.items())]

    def path_update(self, account: str, region: str, *, set_: dict | None = None, remove: tuple = (),
                    expect: dict) -> bool:
        self._hook("path_update")
        if not set_ and not remove:
            raise ValueError("path_update needs something to set or remove")  # DynamoDB refuses an empty update
        path = self._paths.get((account, region))
        if path is None or any(path.get(f) != v for f, v in expect.items()):
            return False
        path.update(set_ or {})
        path.update({f: None for f in remove})
        return True

    # -- one-time claims ------------------------------------------------------------
    def claim_alert(self, key: str, record: dict, now: datetime, keep_days: int = 400) -> bool:
        self._hook("claim_alert")
        doc = json.dumps(record)  # the adapter stores it as JSON: unserialisable records fail here too
        if key in self._alerts:
            return False
        self._alerts[key] = {"doc": doc, "ttl": int((utc(now) + timedelta(days=keep_days)).timestamp())}
        return True

    def release_alert(self, key: str) -> None:
        self._hook("release_alert")
        self._alerts.pop(key, None)

    def alert(self, key: str) -> dict | None:
        self._hook("alert")
        item = self._alerts.get(key)
        return json.loads(item["doc"]) if item else None

    def first_delivery(self, key: str, now: datetime) -> tuple[bool, str | None]:
        self._hook("first_delivery")
        if key not in self._once:
            self._once[key] = {"ttl": int((utc(now) + timedelta(days=1)).timestamp())}
            return True, None
        return False, self._once[key].get("request_id")

    # -- failed attempts grouped into one Slack line -------------------------------------
    def join_alert_group(self, key: str, member: str, event_time: datetime, now: datetime,
                         keep_days: int = 400) -> dict:
        self._hook("join_alert_group")
        t = iso_z(event_time)
        g = self._groups.setdefault(key, {"count": 0, "first": t, "last": t, "owner": None, "owned_at": None,
                                          "channel": None, "ts": None,
                                          "ttl": int((utc(now) + timedelta(days=keep_days)).timestamp())})
        g["count"] += 1
        g["first"], g["last"] = min(g["first"] or t, t), max(g["last"] or t, t)
        if g["owner"] is None:
            g["owner"], g["owned_at"] = member, iso_z(now)
        return {k: v for k, v in g.items() if k != "ttl"}

    def take_alert_group(self, key: str, old_owner: str, member: str, now: datetime) -> bool:
        self._hook("take_alert_group")
        g = self._groups.get(key)
        if g is None or g["owner"] != old_owner or g["ts"] is not None:
            return False
        g["owner"], g["owned_at"] = member, iso_z(now)
        return True

    def save_alert_group_message(self, key: str, member: str, channel: str, ts: str) -> bool:
        self._hook("save_alert_group_message")
        g = self._groups.get(key)
        if g is None or g["owner"] != member or g["ts"] is not None:
            return False
        g["channel"], g["ts"] = channel, ts
        return True

    def leave_alert_group(self, key: str, member: str) -> None:
        self._hook("leave_alert_group")
        g = self._groups.get(key)
        if g is None:
            return
        g["count"] -= 1
        if g["owner"] == member and g["ts"] is None:
            g["owner"] = g["owned_at"] = None

    def alert_group(self, key: str) -> dict | None:
        self._hook("alert_group")
        g = self._groups.get(key)
        return {k: v for k, v in g.items() if k != "ttl"} if g else None

    # -- ways in: the Query, the claim, uses, first uses ----------------------------------
    def alert_context(self, principal_key: str, at: datetime) -> AlertContext:
        self._hook("alert_context")
        t = iso_z(at)
        grants = self.grants_ending_after(Principal.iam_user(principal_key), at) \
            if not principal_key.startswith("who:") else []
        used = frozenset(rid for rid, (pkey, sk) in self._used.items() if pkey == principal_key and sk >= t)
        digests = [self._digest(k) for k, d in sorted(self._digests.items())
                   if d["principal"] == principal_key and f"{d['open_until']}~digest#{k}" >= t]
        return AlertContext(grants, digests, used)

    def claim_call(self, key: str, owner: str, record: dict, now: datetime, *, token: str,
                   digest: str | None = None, use: tuple[str, str] | None = None) -> CallClaim:
        self._hook("claim_call")
        doc = json.dumps(record)
        old = self._alerts.get(key)
        if old is None:
            self._alerts[key] = {"doc": doc, "ttl": int((utc(now) + timedelta(days=400)).timestamp()),
                                 "owner": owner, "at": iso_z(now), "attempt": token, "digest": digest, "use": use}
            return CallClaim("first")
        if old.get("attempt") == token:
            return CallClaim("first")
        if old.get("owner") != owner:
            return CallClaim("taken")
        in_flight = old.get("at") is not None and not old.get("failed")
        return CallClaim("again", attempt_at=parse_iso(old["at"]) if in_flight else None, digest=old.get("digest"))

    def put_call_in_digest(self, key: str, owner: str, digest: str, instead_of: str | None = None) -> bool:
        self._hook("put_call_in_digest")
        item = self._alerts.get(key)
        if item is None or item.get("owner") != owner or item.get("digest") != instead_of:
            return False
        item["digest"] = digest
        return True

    def call_failed(self, key: str, owner: str) -> None:
        self._hook("call_failed")
        item = self._alerts.get(key)
        if item is not None and item.get("owner") == owner:
            item["failed"] = True

    def call(self, key: str) -> dict | None:
        self._hook("call")
        item = self._alerts.get(key)
        if item is None:
            return None
        return {"record": json.loads(item["doc"]), "owner": item.get("owner"), "digest": item.get("digest")}

    def uses(self, request_id: str) -> list[dict]:
        self._hook("uses")
        found = sorted((item["use"][1], json.loads(item["doc"])) for item in self._alerts.values()
                       if item.get("use") and item["use"][0] == request_id)
        return [doc for _, doc in found]

    def first_use(self, request_id: str, principal_key: str, window_end: datetime, now: datetime) -> bool:
        self._hook("first_use")
        if request_id in self._used:
            return False
        self._used[request_id] = (principal_key, f"{iso_z(window_end)}#{request_id}#used")
        return True

    # -- grant activity (chalicelib/adapters/activity_items.py) ----------------------------
    def activity(self, request_id: str) -> dict | None:
        self._hook("activity")
        doc = self._activity.get(request_id)
        return json.loads(doc) if doc is not None else None

    def record_activity(self, request_id: str, event_id: str, update, now: datetime) -> tuple[bool, dict | None]:
        self._hook("record_activity")
        if event_id in self._activity_claims:
            return False, None
        old = self._activity.get(request_id)
        new = update(json.loads(old) if old is not None else None)
        self._activity_claims[event_id] = request_id
        self._activity[request_id] = json.dumps(new)
        return True, new

    # -- burst digests ----------------------------------------------------------------------
    def join_digest(self, join: DigestJoin, now: datetime) -> dict | None:
        self._hook("join_digest")
        d = self._digests.get(join.key)
        if d is not None and (join.member in d["m"] or d["members"] >= d["cap"] or d["open_until"] <= iso_z(now)):
            return self._digest(join.key) if join.member in d["m"] else None
        if d is None:
            d = self._digests[join.key] = {
                "loud": join.loud, "channel": join.channel, "principal": join.principal,
                "open_until": iso_z(join.open_until), "cap": join.cap, "members": 0, "shown": 0,
                "first": iso_z(join.event_time), "last": None, "counts": {}, "grants": {}, "lines": [],
                "ts": None, "post_channel": None, "next_at": iso_z(join.not_before or now), "dirty": False,
                "flusher": None, "lease": None, "m": set(), "due_at": None}
        d["m"].add(join.member)
        d["members"] += 1
        d["last"] = iso_z(join.event_time)
        d["due_at"] = iso_z(now)
        if join.request_id:
            d["counts"][join.request_id] = d["counts"].get(join.request_id, 0) + 1
            d["grants"].setdefault(join.request_id, json.loads(join.grant or "{}"))
        if join.line:
            d["lines"].append(json.loads(join.line))
        return self._digest(join.key)

    def alert_digest(self, key: str) -> dict | None:
        self._hook("alert_digest")
        return self._digest(key) if key in self._digests else None

    def take_digest(self, key: str, token: str, now: datetime, lease: timedelta) -> dict | None:
        self._hook("take_digest")
        d = self._digests.get(key)
        t = iso_z(now)
        if d is None or not (d["flusher"] is None or d["lease"] < t) or d["next_at"] > t \
                or d["members"] <= d["shown"]:
            return None
        before = self._digest(key)
        d["flusher"], d["lease"], d["dirty"] = token, iso_z(now + lease), True
        return before

    def release_digest(self, key: str, token: str, *, next_at: datetime, shown: int | None = None,
                       where: tuple[str, str] | None = None, clean: bool = True) -> bool:
        self._hook("release_digest")
        d = self._digests.get(key)
        if d is None or d["flusher"] != token:
            return False
        d["next_at"], d["dirty"], d["flusher"] = iso_z(next_at), not clean, None
        if shown is not None:
            d["shown"] = shown
        if where is not None:
            d["post_channel"], d["ts"] = where
        return True

    def digests_due(self, now: datetime, limit: int = 50) -> list[str]:
        self._hook("digests_due")
        due = sorted((d["due_at"], k) for k, d in self._digests.items()
                     if d["due_at"] is not None and d["due_at"] <= iso_z(now))
        return [k for _, k in due[:limit]]

    def stop_tracking_digest(self, key: str, members: int) -> bool:
        self._hook("stop_tracking_digest")
        d = self._digests.get(key)
        if d is None or not (d["members"] == members == d["shown"]):
            return False
        d["due_at"] = None
        return True

    def _digest(self, key: str) -> dict:
        d = self._digests[key]
        out = {k: copy.deepcopy(v) for k, v in d.items() if k not in ("m", "lease", "due_at")}
        return {**out, "key": key, "member_keys": sorted(d["m"])}

    def digests(self) -> dict[str, dict]:
        """Every digest (for tests)."""
        return {k: self._digest(k) for k in self._digests}

    # -- for tests: the whole table at a glance (no port has these) ------------------------
    def requests(self) -> list[Request]:
        """Every stored request, by id."""
        return sorted(self._all(), key=lambda r: r.request_id)

    def alerts(self) -> dict[str, dict]:
        return {k: json.loads(v["doc"]) for k, v in self._alerts.items()}

    def snapshot(self) -> dict:
        """Everything stored, for 'nothing changed' assertions."""
        return copy.deepcopy({"requests": self._requests, "events": self._events, "cards": self._cards,
                              "sent": self._sent, "alerts": self._alerts, "once": self._once,
                              "used": self._used, "groups": self._groups,
                              "digests": self._digests, "activity": self._activity,
                              "activity_claims": self._activity_claims})


# --------------------------------------------------------------------------- IAM grants


#: the adapter refuses to reuse a policy whose document differs (when this version of the
#: domain has that error; the fake follows whichever adapter it is tested against)
_GrantMismatch = getattr(_errors, "GrantMismatch", None)


class NoSuchEntity(LookupError):
    """IAM's NoSuchEntity (the real adapter lets it through as a ClientError)."""


class DeleteConflict(RuntimeError):
    """IAM refuses to delete a managed policy still attached to somebody."""


@dataclass
class FakePolicy:
    name: str
    path: str
    arn: str
    document: dict
    description: str = ""
    tags: dict = field(default_factory=dict)
    users: list[str] = field(default_factory=list)  # IAM user names, in attachment order


def _user(principal: Principal) -> str:
    if principal.kind != Principal.IAM_USER:
        raise ValueError(f"IamGrants attaches grants to IAM users, not {principal.kind}")
    return principal.name


class FakeGrants(_Faults):
    """The bastion account's customer-managed policies and MFA devices (see the module docstring)."""

    def __init__(self, bastion_account_id: str = "111111111111",
                 max_attached: int = pol.DEFAULT_MANAGED_POLICIES_PER_USER, path: str = pol.POLICY_PATH) -> None:
        super().__init__()
        self.account = bastion_account_id
        self.max_attached = max_attached
        self.path = pol.check_path(path)
        self.policies: dict[str, FakePolicy] = {}  # by ARN, in creation order
        self.mfa_devices: dict[str, list[tuple[str, str]]] = {}  # IAM user -> [(enable date, serial)]

    def arn(self, request_id: str) -> str:
        return pol.policy_arn(self.account, request_id, self.path)

    def _request_id(self, p: FakePolicy) -> str | None:
        """The request id a policy of this stage is named after (None: not one of ours)."""
        prefix = self.arn("").rsplit("/", 1)[1]  # the name a grant policy of this stage starts with
        if p.path != self.path or not p.name.startswith(prefix) or len(p.name) == len(prefix):
            return None
        return p.name[len(prefix):]

    # -- the port ---------------------------------------------------------------------
    def grant(self, *, principal: Principal, request_id: str, document: dict, description: str,
              tags: dict[str, str]) -> str:
        self._hook("grant")
        user = _user(principal)
        arn = self.arn(request_id)
        attached = self.attached(user)
        if arn not in attached and len(attached) >= self.max_attached:
            raise GrantLimitReached(
                f"IAM user {user} already has {len(attached)} managed policies attached "
                f"(the limit is {self.max_attached}); revoke a grant first"
            )
        if arn not in self.policies:
            pol.render(document)  # what IAM would be sent: must be JSON
            self.policies[arn] = FakePolicy(arn.rsplit("/", 1)[1], self.path, arn, copy.deepcopy(document),
                                            description, dict(tags))
        elif _GrantMismatch is not None and self.policies[arn].document != document:
            # EntityAlreadyExists: a retried grant reuses its own policy, never another document
            raise _GrantMismatch(f"IAM already holds a policy named {self.policies[arn].name} "
                                 "with another document; it was not reused")
        if user not in self.policies[arn].users:
            self.policies[arn].users.append(user)
        return arn

    def revoke(self, *, principal: Principal, request_id: str) -> list[Principal]:
        self._hook("revoke")
        arn = self.arn(request_id)
        self._detach(_user(principal), arn)
        found = self.policies.get(arn)
        if found is None:
            return []
        strangers = [Principal.iam_user(u) for u in found.users]
        for p in strangers:
            self._detach(p.name, arn)
        del self.policies[arn]
        return strangers

    def extend(self, *, principal: Principal, request_id: str, document: dict,
               expected_expiry: str | None = None) -> str:
        self._hook("extend")
        user = _user(principal)
        arn = self.arn(request_id)
        found = self.policies.get(arn)
        name = pol.policy_name(request_id, self.path)
        if found is None:
            raise _GrantMismatch(f"IAM holds no policy {name}: there is no grant to extend")
        if pol.without_expiry(found.document) != pol.without_expiry(document):
            raise _GrantMismatch(f"the policy {name} allows something else than the extended grant would "
                                 "(an extension only moves the expiry); it was not changed")
        current = pol.expiry_of(found.document)
        if expected_expiry is not None and found.document != document and current != expected_expiry:
            raise _GrantMismatch(f"the policy {name} ends at {current}, not at {expected_expiry} "
                                 "as the extension was asked from; it was not changed")
        if user not in found.users:
            raise _GrantMismatch(f"the policy {name} is not attached to {user}; it was not extended")
        others = sorted(u for u in found.users if u != user)
        if others:
            raise _GrantMismatch(f"the policy {name} is attached to {', '.join(others)} too; "
                                 "extending it would lengthen their access, so it was not extended")
        if found.document != document:
            pol.render(document)  # what IAM would be sent: must be JSON
            found.document = copy.deepcopy(document)  # the new default version, in one step
        expiry = pol.expiry_of(document)
        if "drawbridge:expires-at" in found.tags and expiry:
            found.tags["drawbridge:expires-at"] = expiry
        return arn

    def mfa_serial(self, principal: Principal) -> str | None:
        self._hook("mfa_serial")
        devices = sorted(self.mfa_devices.get(_user(principal), []))
        return devices[0][1] if devices else None

    def drawbridge_policies(self) -> list[tuple[str, str, int]]:
        self._hook("drawbridge_policies")
        return [(rid, p.arn, len(p.users)) for p in self.policies.values()
                if (rid := self._request_id(p)) is not None]

    def attached_principals(self, policy_arn: str) -> list[Principal]:
        self._hook("attached_principals")
        if policy_arn not in self.policies:
            return None  # as the adapter says of a policy that no longer exists
        return [Principal.iam_user(u) for u in self.policies[policy_arn].users]

    def revoke_from(self, principal: Principal, request_id: str) -> None:
        self._hook("revoke_from")
        self._detach(_user(principal), self.arn(request_id))

    def remove_policy(self, request_id: str, principals: list[Principal]) -> None:
        self._hook("remove_policy")
        arn = self.arn(request_id)
        for p in principals:
            self._detach(_user(p), arn)
        found = self.policies.get(arn)
        if found is None:
            return
        if found.users:
            raise DeleteConflict(f"{arn} is still attached to {', '.join(found.users)}")
        del self.policies[arn]

    def _detach(self, user: str, arn: str) -> None:
        found = self.policies.get(arn)
        if found is not None and user in found.users:
            found.users.remove(user)

    # -- for tests: IAM as people change it by hand (no port has these) ------------------
    def attached(self, user: str | Principal) -> list[str]:
        """Every managed policy ARN attached to the IAM user (Drawbridge's and others)."""
        name = user.name if isinstance(user, Principal) else user
        return [p.arn for p in self.policies.values() if name in p.users]

    def policy(self, request_id: str) -> FakePolicy | None:
        """The grant policy of a request, if IAM holds it."""
        return self.policies.get(self.arn(request_id))

    def holders(self, request_id: str) -> list[str]:
        found = self.policy(request_id)
        return list(found.users) if found else []

    def create_policy(self, name: str, path: str = "/", document: dict | None = None,
                      attach_to: Iterable[str] = ()) -> str:
        """A policy made by hand (or restored from a backup), attached to ``attach_to``."""
        arn = f"arn:aws:iam::{self.account}:policy{path}{name}"
        if arn in self.policies:
            raise RuntimeError(f"EntityAlreadyExists: {arn}")
        self.policies[arn] = FakePolicy(name, path, arn, document or {"Version": "2012-10-17", "Statement": []})
        for user in attach_to:
            self.attach(arn, user)
        return arn

    def attach(self, arn_or_request_id: str, user: str) -> None:
        """Attach by hand, e.g. a grant copied to somebody else."""
        arn = arn_or_request_id if arn_or_request_id.startswith("arn:") else self.arn(arn_or_request_id)
        if user not in self.policies[arn].users:
            self.policies[arn].users.append(user)

    def detach(self, arn_or_request_id: str, user: str) -> None:
        arn = arn_or_request_id if arn_or_request_id.startswith("arn:") else self.arn(arn_or_request_id)
        self._detach(user, arn)

    def delete(self, request_id: str) -> None:
        """The grant policy removed outside Drawbridge (detached from everyone, deleted)."""
        self.policies.pop(self.arn(request_id), None)

    def set_mfa(self, user: str, *serials: str, enabled: str = "2026-01-01T00:00:00Z") -> None:
        """The user's MFA devices (replacing any); all enabled at ``enabled``."""
        self.mfa_devices[user] = [(enabled, s) for s in serials]


# --------------------------------------------------------------------------- Slack


class FakeSessionCuts(_Faults):
    """The JIT roles' cut-off policies in the member accounts, as IAM keeps them: a role's
    unique id, and its policy's versions (at most five, one the default).

    ``roles``: the role ARNs whose account has the member template (revoker + cut-off
    policy); any other role is ``CutOffsUnavailable``, as the real adapter says when the
    template is not deployed there. Faults: ``fail_next("write", exc)`` and friends."""

    def __init__(self, roles: Iterable[str] = ()) -> None:
        super().__init__()
        self.policies: dict[str, list[dict]] = {}  # role ARN -> versions, oldest first; the last is the default
        self.writes = 0
        #: IAM's eventual consistency: this many reads after each write still see the
        #: version before it
        self.stale_reads = 0
        self._stale_left: dict[str, int] = {}
        for arn in roles:
            self.deploy(arn)

    def deploy(self, role_arn: str) -> None:
        """The member template's first version: the placeholder statement."""
        from chalicelib import cutoff

        self.policies.setdefault(role_arn, [cutoff.document([])])

    @staticmethod
    def unique_id(role_arn: str) -> str:
        import hashlib

        return "AROA" + hashlib.sha256(role_arn.encode()).hexdigest().upper()[:17]

    def _versions(self, role_arn: str) -> list[dict]:
        if role_arn not in self.policies:
            raise _errors.CutOffsUnavailable(f"no cut-off policy for {role_arn} (member template not deployed)")
        return self.policies[role_arn]

    # -- the port ---------------------------------------------------------------------
    def role_id(self, role_arn: str) -> str:
        self._hook("role_id")
        self._versions(role_arn)
        return self.unique_id(role_arn)

    def read(self, role_arn: str) -> dict:
        self._hook("read")
        versions = self._versions(role_arn)
        if self._stale_left.get(role_arn, 0) > 0 and len(versions) > 1:
            self._stale_left[role_arn] -= 1
            return copy.deepcopy(versions[-2])
        return copy.deepcopy(versions[-1])

    def write(self, role_arn: str, document: dict) -> None:
        self._hook("write")
        versions = self._versions(role_arn)
        if len(versions) >= 5:
            del versions[0]  # the oldest that is not the default
        versions.append(copy.deepcopy(document))
        self.writes += 1
        self._stale_left[role_arn] = self.stale_reads

    # -- for tests ----------------------------------------------------------------------
    def document(self, role_arn: str) -> dict:
        return self.policies[role_arn][-1]


class MessageNotFound(LookupError):
    """Slack's ``message_not_found`` (chat.update of a message that does not exist)."""


@dataclass
class Message:
    kind: str  # "post" or "ephemeral"
    channel: str
    ts: str | None
    text: str
    blocks: list[dict] | None = None
    event_type: str | None = None
    payload: dict | None = None
    thread_ts: str | None = None
    user: str | None = None  # an ephemeral's recipient
    history: list["Message"] = field(default_factory=list)  # earlier versions, oldest first

    @property
    def metadata(self) -> dict | None:
        if self.event_type is None:
            return None
        return {"event_type": self.event_type, "event_payload": self.payload}

    def all_text(self) -> str:
        """The fallback text and every string inside the blocks."""
        out = [self.text]

        def walk(node: Any) -> None:
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, dict):
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(self.blocks or [])
        return "\n".join(out)

    @property
    def has_buttons(self) -> bool:
        return any(b.get("type") == "actions" for b in self.blocks or [])


def _as_json(value: Any) -> Any:
    """What Slack receives is JSON: refuse what is not, and keep a private copy."""
    return json.loads(json.dumps(value))


class FakeUserGroups:
    """Slack user groups in memory (the UserGroups port): ``groups[handle]`` is the set of
    member Slack ids; a handle missing from it cannot be resolved (None), as Slack failing."""

    def __init__(self, groups: dict[str, set[str]] | None = None) -> None:
        self.groups: dict[str, set[str]] = {k: set(v) for k, v in (groups or {}).items()}

    def members(self, handle: str) -> frozenset[str] | None:
        found = self.groups.get(handle)
        return None if found is None else frozenset(found)

    def channel_members(self, channel: str) -> frozenset[str] | None:
        """``groups["#<channel>"]``: who is in a channel (None when not set: unknown)."""
        return self.members(f"#{channel}")


class FakeNotifier(_Faults):
    """Slack's Web API as the notifier uses it (see the module docstring)."""

    def __init__(self, rate_limit: tuple[float, int] | None = None, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__()
        self.messages: list[Message] = []  # posts (channel, DMs, thread replies) and ephemerals
        self._ts = itertools.count(1)
        self.rate_limit, self.clock = rate_limit, clock
        self._buckets: dict[str, tuple[float, datetime]] = {}
        self.writes: list[tuple[str, str, datetime | None]] = []  # (channel, "post"/"update", when) that landed
        self.refused: list[tuple[str, str, datetime | None]] = []  # ... refused with RateLimited
        self.homes: dict[str, dict] = {}  # Slack user id -> the App Home view last published
        self.home_publishes: list[str] = []  # the user id of every views.publish, in order
        self.opened: list[tuple[str, dict]] = []  # (trigger id, view) of every views.open that opened
        self.files: list[dict] = []  # files shared: {"id", "name", "content", "channel", "thread_ts"}

    def _now(self) -> datetime | None:
        return self.clock() if self.clock is not None else None

    def _token(self, channel: str, what: str, may_refuse: bool) -> None:
        """Take a token from the channel's bucket; RateLimited if none is left and the call
        may be refused (``post``/``update`` stand for slack-sdk, which waits: never refused)."""
        if self.rate_limit is None or self.clock is None:
            return
        from chalicelib.domain.errors import RateLimited

        rate, burst = self.rate_limit
        now = self.clock()
        tokens, at = self._buckets.get(channel, (float(burst), now))
        tokens = min(float(burst), tokens + max(0.0, (now - at).total_seconds()) * rate)
        if tokens < 1.0 and may_refuse:
            self._buckets[channel] = (tokens, now)
            self.refused.append((channel, what, now))
            raise RateLimited(max(1, int(-(-(1.0 - tokens) // rate))))
        self._buckets[channel] = (max(0.0, tokens - 1.0), now)

    def try_post(self, channel: str, text: str, blocks: list[dict] | None, event_type: str,
                 payload: dict) -> tuple[str, str]:
        self._hook("try_post")
        self._token(dm_channel(channel) if channel[:1] in ("U", "W") else channel, "post", True)
        return self._post(channel, text, blocks, event_type, payload, None)

    def try_update(self, channel: str, ts: str, text: str, blocks: list[dict] | None, event_type: str,
                   payload: dict) -> None:
        self._hook("try_update")
        if self.get(channel, ts) is None:
            raise MessageNotFound(f"message_not_found: {channel} {ts}")
        self._token(channel, "update", True)
        self._update(channel, ts, text, blocks, event_type, payload)

    # -- the port ---------------------------------------------------------------------
    def post(self, channel: str, text: str, blocks: list[dict] | None, event_type: str, payload: dict,
             thread_ts: str | None = None) -> tuple[str, str]:
        self._hook("post")
        self._token(dm_channel(channel) if channel[:1] in ("U", "W") else channel, "post", False)
        return self._post(channel, text, blocks, event_type, payload, thread_ts)

    def update(self, channel: str, ts: str, text: str, blocks: list[dict] | None, event_type: str,
               payload: dict) -> None:
        self._hook("update")
        if self.get(channel, ts) is None:
            raise MessageNotFound(f"message_not_found: {channel} {ts}")
        self._token(channel, "update", False)
        self._update(channel, ts, text, blocks, event_type, payload)

    def _update(self, channel: str, ts: str, text: str, blocks, event_type: str, payload: dict) -> None:
        msg = self.get(channel, ts)
        self.writes.append((channel, "update", self._now()))
        msg.history.append(Message(msg.kind, msg.channel, msg.ts, msg.text, msg.blocks, msg.event_type,
                                   msg.payload, msg.thread_ts))
        msg.text, msg.blocks = text, _as_json(blocks)
        msg.event_type, msg.payload = event_type, _as_json(payload)

    def find(self, channel: str, event_type: str | None, match: dict) -> tuple[str, str] | None:
        self._hook("find")
        if channel[:1] in ("U", "W"):
            channel = dm_channel(channel)
        for msg in reversed(self.messages):
            if (msg.kind == "post" and msg.channel == channel and msg.thread_ts is None
                    and msg.event_type is not None and event_type in (None, msg.event_type)
                    and all((msg.payload or {}).get(k) == v for k, v in match.items())):
                return channel, msg.ts
        return None

    def delete(self, channel: str, ts: str) -> None:
        self._hook("delete")
        msg = self.get(channel, ts)
        if msg is not None:
            self.messages.remove(msg)

    def ephemeral(self, channel: str, user: str, text: str) -> None:
        self._hook("ephemeral")
        self.messages.append(Message("ephemeral", channel, None, text, user=user))

    def dm(self, user: str, text: str, blocks: list[dict] | None, event_type: str,
           payload: dict) -> tuple[str, str]:
        self._hook("dm")
        return self._post(user, text, blocks, event_type, payload, None)

    def upload_files(self, channel: str, thread_ts: str, files) -> list[str]:
        """files_upload_v2: shared as one reply in the thread of a message that exists
        (``channel`` a channel or DM id, as files.completeUploadExternal takes it)."""
        self._hook("upload_files")
        if channel[:1] in ("U", "W") or self.get(channel, thread_ts) is None:
            raise MessageNotFound(f"invalid_thread_ts / channel_not_found: {channel} {thread_ts}")
        ids = []
        for name, content in files:
            ident = f"F{len(self.files) + 1:08d}"
            self.files.append({"id": ident, "name": name, "content": content, "channel": channel,
                               "thread_ts": thread_ts})
            ids.append(ident)
        return ids

    def thread_file_names(self, channel: str, thread_ts: str) -> set[str]:
        self._hook("thread_file_names")
        return {f["name"] for f in self.files if f["channel"] == channel and f["thread_ts"] == thread_ts}

    def publish_home(self, user_id: str, view: dict) -> None:
        self._hook("publish_home")
        if not user_id or not isinstance(view, dict) or view.get("type") != "home" \
                or len(view.get("blocks") or []) > 100:
            raise ValueError(f"invalid_arguments: views.publish for {user_id!r}")
        self.homes[user_id] = _as_json(view)
        self.home_publishes.append(user_id)

    def open_view(self, trigger_id: str, view: dict) -> None:
        """views.open: a trigger id opens one view, once (``ViewNotOpened`` as Slack says)."""
        from chalicelib.domain.errors import ViewNotOpened

        self._hook("open_view")
        if not isinstance(view, dict) or view.get("type") != "modal" or len(view.get("blocks") or []) > 100 \
                or len((view.get("title") or {}).get("text") or "") > 24:
            raise ViewNotOpened("invalid_arguments")
        if not trigger_id:
            raise ViewNotOpened("invalid_trigger_id")
        if any(t == trigger_id for t, _ in self.opened):
            raise ViewNotOpened("exchanged_trigger_id")
        self.opened.append((trigger_id, _as_json(view)))

    def _post(self, channel: str, text: str, blocks, event_type: str, payload: dict,
              thread_ts: str | None) -> tuple[str, str]:
        if channel[:1] in ("U", "W"):
            channel = dm_channel(channel)  # a post to a user id lands in the app's DM with them
        ts = f"1794492000.{next(self._ts):06d}"
        self.writes.append((channel, "post", self._now()))
        self.messages.append(Message("post", channel, ts, text, _as_json(blocks), event_type,
                                     _as_json(payload), thread_ts))
        return channel, ts

    # -- for tests ---------------------------------------------------------------------
    def get(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages if m.kind == "post" and m.channel == channel and m.ts == ts), None)

    def posts(self, channel: str | None = None, event_type: str | None = None,
              thread_ts: str | None | type = ...) -> list[Message]:
        """Posted messages (not ephemerals), optionally in one channel / of one event type /
        in one thread (``thread_ts=None``: top-level messages only)."""
        return [m for m in self.messages if m.kind == "post"
                and (channel is None or m.channel == channel)
                and (event_type is None or m.event_type == event_type)
                and (thread_ts is ... or m.thread_ts == thread_ts)]

    def dms(self, user: str) -> list[Message]:
        return self.posts(dm_channel(user))

    def ephemerals(self, user: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.kind == "ephemeral" and (user is None or m.user == user)]


def dm_channel(user: str) -> str:
    return "D" + user[1:]


# --------------------------------------------------------------------------- the service


def sequential_ids(start: int = 1) -> Callable[[datetime], str]:
    """Readable request ids in the real format: req-20261112-000001, -000002, ..."""
    counter = itertools.count(start)
    return lambda now: f"req-{now:%Y%m%d}-{next(counter):06x}"


def make_service(catalog=None, **overrides):
    """``chalicelib.service.Drawbridge`` on fresh fakes.

    ``catalog``: a loaded Catalog, TOML text, or None for the sample catalog
    (policies/access.toml). Every catalog person gets the MFA device the local seed gives
    them (``arn:aws:iam::<bastion>:mfa/<iam user>``) unless ``grants`` is overridden.
    ``overrides`` replace any Deps field (store, grants, slack, clock, pending_window,
    max_open_per_user, new_id, cuts: a FakeSessionCuts holding every catalog role unless
    given; ``cuts=None`` turns cut-offs off).
    """
    from chalicelib.catalog import load_catalog, parse_catalog
    from chalicelib.service import Drawbridge

    if catalog is None:
        catalog = load_catalog(SAMPLE_CATALOG)
    elif isinstance(catalog, str):
        catalog = parse_catalog(catalog)
    if "grants" not in overrides:
        grants = FakeGrants(catalog.bastion_account_id)
        for person in catalog.people.values():
            grants.set_mfa(person.iam_user, f"arn:aws:iam::{catalog.bastion_account_id}:mfa/{person.iam_user}")
        overrides["grants"] = grants
    if "cuts" not in overrides:  # every catalog role's account has the member template
        overrides["cuts"] = FakeSessionCuts(role.role_arn for account in catalog.accounts.values()
                                            for role in account.roles.values())
    deps = {"store": InMemoryStore(), "slack": FakeNotifier(), "clock": FakeClock(), "new_id": sequential_ids(),
            "groups": FakeUserGroups()}
    deps.update(overrides)
    if "sleep" not in deps and isinstance(deps["clock"], FakeClock):  # waiting moves the fake clock
        deps["sleep"] = lambda seconds, clock=deps["clock"]: clock.advance(seconds=seconds)
    return Drawbridge(catalog=catalog, **deps)
