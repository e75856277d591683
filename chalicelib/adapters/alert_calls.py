"""The alert path's per-call items and burst digests in the one table (see store.py).

* ``ALERT#<key> / ALERT``    one record per way in (dedupe + audit): ``doc`` (the record),
  ``owner`` (the eventID of the copy that claimed it), ``at``, ``digest`` when the call is
  shown in a digest instead of its own message. A covered call is also in the
  ``grants_by_user`` index under ``USES#<request id>`` (``uses``), so recording it as a use
  of its grant is the same write.
* ``DIGEST#<key> / DIGEST``  one Slack message for many calls of one principal in a burst:
  members (a set of alert keys, capped), counts per covering grant, the named lines of
  uncovered calls, how many are shown, where the message is, and the flush lease. In the
  ``grants_by_user`` index under the principal's own ``GRANT#`` partition (sort key
  ``<open until>~digest#<key>``), so the one Query that looks for a covering grant also
  sees an open digest; in the ``due`` index (``ALERTDIGEST``) while it has calls to show.
* ``REQ#<id> / USED``         the grant's first use was told on its card (same index
  partition as the grant, sorting right after it).

Two calls on the common path: :meth:`alert_context` (the Query) and :meth:`claim_call`
(one conditional put; a failure returns the item that holds the claim).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from ..domain.model import iso_z, parse_iso, utc
from ..ports import AlertContext, CallClaim, DigestJoin
from .alert_items import _key, _s, attempt_day_keys

DIGEST_DUE = "ALERTDIGEST"  # the digests' partition of the ``due`` index
_KEEP = timedelta(days=400)


def _ttl(now: datetime, keep: timedelta = _KEEP) -> dict:
    return {"N": str(int((utc(now) + keep).timestamp()))}


def digest_from_item(item: dict) -> dict:
    """A digest item as the use case reads it."""

    def s(name: str) -> str | None:
        return item[name]["S"] if name in item else None

    def n(name: str) -> int:
        return int(item.get(name, {}).get("N", "0"))

    counts = {k[2:]: int(v["N"]) for k, v in item.items() if k.startswith("n#")}
    grants = {k[2:]: json.loads(v["S"]) for k, v in item.items() if k.startswith("g#")}
    return {
        "key": item["PK"]["S"][len("DIGEST#"):], "loud": item.get("loud", {}).get("BOOL", False),
        "channel": s("channel"), "principal": s("principal"), "open_until": s("open_until"),
        "cap": n("cap"), "members": n("members"), "shown": n("shown"), "first": s("first"), "last": s("last"),
        "counts": counts, "grants": grants, "lines": [json.loads(v["S"]) for v in item.get("lines", {}).get("L", [])],
        "ts": s("post_ts"), "post_channel": s("post_channel"), "next_at": s("next_at"),
        "dirty": item.get("dirty", {}).get("BOOL", False), "flusher": s("flusher"),
        "member_keys": sorted(item.get("m", {}).get("SS", [])),
    }


class AlertCalls:
    """Mixed into :class:`~chalicelib.adapters.store.DynamoStore`."""

    # -- the Query: covering grants, first uses told, open digests ------------------------
    def alert_context(self, principal_key: str, at: datetime) -> AlertContext:
        from .store import _request

        grants, digests, used = [], [], set()
        items = self._query(
            IndexName="grants_by_user",
            KeyConditionExpression="grant_pk = :g AND grant_sk >= :t",
            ExpressionAttributeValues={":g": _s(f"GRANT#{principal_key}"), ":t": _s(iso_z(at))},
        )
        for item in items:
            sk = item["SK"]["S"]
            if sk == "REQUEST":
                grants.append(_request(item))
            elif sk == "USED":
                used.add(item["PK"]["S"][len("REQ#"):])
            elif sk == "DIGEST":
                digests.append(digest_from_item(item))
        return AlertContext(grants, digests, frozenset(used))

    # -- one record per call ------------------------------------------------------------
    def claim_call(self, key: str, owner: str, record: dict, now: datetime, *, token: str,
                   digest: str | None = None, use: tuple[str, str] | None = None) -> CallClaim:
        """Claim and record one call in one conditional put. ``use``: (request id, sort key)
        of the grant it uses; ``digest``: the digest it is shown in (else its own message)."""
        from botocore.exceptions import ClientError

        item = {**_key(f"ALERT#{key}", "ALERT"), "doc": _s(json.dumps(record)), "owner": _s(owner),
                "at": _s(iso_z(now)), "attempt": _s(token), "ttl": _ttl(now), **attempt_day_keys(key, record)}
        if digest:
            item["digest"] = _s(digest)
        if use:
            item["grant_pk"], item["grant_sk"] = _s(f"USES#{use[0]}"), _s(use[1])
        try:
            self._db.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(PK)",
                              ReturnValuesOnConditionCheckFailure="ALL_OLD")
            return CallClaim("first")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
        if not old:  # an emulator that does not return the item: read it (a third call, here only)
            old = self._db.get_item(TableName=self._table, Key=_key(f"ALERT#{key}", "ALERT"),
                                    ConsistentRead=True).get("Item") or {}
        if old.get("attempt", {}).get("S") == token:
            return CallClaim("first")  # our own put, whose answer was lost and retried
        if old.get("owner", {}).get("S") != owner:
            return CallClaim("taken")
        in_flight = "at" in old and not old.get("failed", {}).get("BOOL", False)
        return CallClaim("again", attempt_at=parse_iso(old["at"]["S"]) if in_flight else None,
                         digest=old.get("digest", {}).get("S"))

    def call_failed(self, key: str, owner: str) -> None:
        """This copy's attempt to show the call failed (it raises; Lambda retries it): the
        retry must not take the attempt for one still in flight."""
        self._cond_update(_key(f"ALERT#{key}", "ALERT"), "SET #f = :t", "#o = :me",
                          {"#f": "failed", "#o": "owner"}, {":t": {"BOOL": True}, ":me": _s(owner)})

    def put_call_in_digest(self, key: str, owner: str, digest: str, instead_of: str | None = None) -> bool:
        """The call will be shown in ``digest`` (Slack refused its own message, or its digest
        was full): recorded before it joins, so a retry never posts it on its own too."""
        cond = "#o = :me AND " + ("#d = :old" if instead_of else "attribute_not_exists(#d)")
        values = {":me": _s(owner), ":d": _s(digest), **({":old": _s(instead_of)} if instead_of else {})}
        return self._cond_update(_key(f"ALERT#{key}", "ALERT"), "SET #d = :d", cond,
                                 {"#o": "owner", "#d": "digest"}, values)

    def call(self, key: str) -> dict | None:
        """The call's item: ``doc`` (the record), ``owner``, ``digest`` (None: its own message)."""
        item = self._db.get_item(TableName=self._table, Key=_key(f"ALERT#{key}", "ALERT"),
                                 ConsistentRead=True).get("Item")
        if not item:
            return None
        return {"record": json.loads(item["doc"]["S"]), "owner": item.get("owner", {}).get("S"),
                "digest": item.get("digest", {}).get("S")}

    def uses(self, request_id: str) -> list[dict]:
        items = self._query(
            IndexName="grants_by_user",
            KeyConditionExpression="grant_pk = :g",
            ExpressionAttributeValues={":g": _s(f"USES#{request_id}")},
        )
        return [json.loads(i["doc"]["S"]) for i in items]

    def first_use(self, request_id: str, principal_key: str, window_end: datetime, now: datetime) -> bool:
        """True once per grant: its first use is told on its card (this call does it)."""
        return self._put_new({**_key(f"REQ#{request_id}", "USED"), "at": _s(iso_z(now)),
                              "grant_pk": _s(f"GRANT#{principal_key}"),
                              "grant_sk": _s(f"{iso_z(window_end)}#{request_id}#used")})

    # -- digests --------------------------------------------------------------------------
    def join_digest(self, join: DigestJoin, now: datetime) -> dict | None:
        """Count the call in the digest (made if new); the digest after it. Idempotent: a
        member joining again changes nothing. None if the digest is full or closed."""
        from botocore.exceptions import ClientError

        names = {"#m": "m", "#n": "members", "#loud": "loud", "#ch": "channel", "#pr": "principal",
                 "#ou": "open_until", "#cap": "cap", "#sh": "shown", "#f": "first", "#l": "last",
                 "#gpk": "grant_pk", "#gsk": "grant_sk", "#dpk": "due_pk", "#dat": "due_at", "#ttl": "ttl",
                 "#next": "next_at"}
        t = iso_z(join.event_time)
        values = {":me": {"SS": [join.member]}, ":mek": _s(join.member), ":one": {"N": "1"},
                  ":loud": {"BOOL": join.loud}, ":ch": _s(join.channel), ":pr": _s(join.principal),
                  ":ou": _s(iso_z(join.open_until)), ":cap": {"N": str(join.cap)}, ":zero": {"N": "0"},
                  ":t": _s(t), ":gpk": _s(f"GRANT#{join.principal}"),
                  ":gsk": _s(f"{iso_z(join.open_until)}~digest#{join.key}"), ":due": _s(DIGEST_DUE),
                  ":now": _s(iso_z(now)), ":ttl": _ttl(now, timedelta(days=30)),
                  ":next": _s(iso_z(join.not_before or now))}
        add = ["#m :me", "#n :one"]
        sets = ["#loud = if_not_exists(#loud, :loud)", "#ch = if_not_exists(#ch, :ch)",
                "#pr = if_not_exists(#pr, :pr)", "#ou = if_not_exists(#ou, :ou)", "#cap = if_not_exists(#cap, :cap)",
                "#sh = if_not_exists(#sh, :zero)", "#f = if_not_exists(#f, :t)", "#l = :t",
                "#gpk = if_not_exists(#gpk, :gpk)", "#gsk = if_not_exists(#gsk, :gsk)", "#dpk = :due",
                "#dat = :now", "#ttl = if_not_exists(#ttl, :ttl)", "#next = if_not_exists(#next, :next)"]
        if join.request_id:
            names.update({"#cnt": f"n#{join.request_id}", "#g": f"g#{join.request_id}"})
            values[":grant"] = _s(join.grant or "{}")
            add.append("#cnt :one")
            sets.append("#g = if_not_exists(#g, :grant)")
        if join.line:
            names["#lines"] = "lines"
            values.update({":line": {"L": [_s(join.line)]}, ":empty": {"L": []}})
            sets.append("#lines = list_append(if_not_exists(#lines, :empty), :line)")
        key = _key(f"DIGEST#{join.key}", "DIGEST")
        try:
            resp = self._db.update_item(
                TableName=self._table, Key=key, UpdateExpression=f"SET {', '.join(sets)} ADD {', '.join(add)}",
                ConditionExpression="attribute_not_exists(PK) OR (NOT contains(#m, :mek) AND #n < #cap AND #ou > :now)",
                ExpressionAttributeNames=names, ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
            return digest_from_item(resp["Attributes"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        found = self.alert_digest(join.key)
        return found if found is not None and join.member in found["member_keys"] else None

    def alert_digest(self, key: str) -> dict | None:
        item = self._db.get_item(TableName=self._table, Key=_key(f"DIGEST#{key}", "DIGEST"),
                                 ConsistentRead=True).get("Item")
        return digest_from_item(item) if item else None

    def take_digest(self, key: str, token: str, now: datetime, lease: timedelta) -> dict | None:
        """Become the digest's one flusher if it has calls to show and may be written now;
        the digest as it was (``dirty``: the last flusher did not finish), else None."""
        from botocore.exceptions import ClientError

        try:
            resp = self._db.update_item(
                TableName=self._table, Key=_key(f"DIGEST#{key}", "DIGEST"),
                UpdateExpression="SET #fl = :tok, #lease = :lease, #dirty = :true",
                ConditionExpression=("attribute_exists(PK) AND (attribute_not_exists(#fl) OR #lease < :now) "
                                     "AND (attribute_not_exists(#next) OR #next <= :now) AND #n > #sh"),
                ExpressionAttributeNames={"#fl": "flusher", "#lease": "lease", "#dirty": "dirty",
                                          "#next": "next_at", "#n": "members", "#sh": "shown"},
                ExpressionAttributeValues={":tok": _s(token), ":lease": _s(iso_z(now + lease)),
                                           ":true": {"BOOL": True}, ":now": _s(iso_z(now))},
                ReturnValues="ALL_OLD")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return digest_from_item(resp["Attributes"])

    def release_digest(self, key: str, token: str, *, next_at: datetime, shown: int | None = None,
                       where: tuple[str, str] | None = None, clean: bool = True) -> bool:
        """Give the flush lease back: ``shown`` calls are in Slack at ``where``; no write
        before ``next_at``. ``clean=False``: a post may have landed unseen (look first)."""
        sets = ["#next = :next", "#dirty = :dirty"]
        values = {":tok": _s(token), ":next": _s(iso_z(next_at)), ":dirty": {"BOOL": not clean}}
        names = {"#fl": "flusher", "#next": "next_at", "#dirty": "dirty"}
        if shown is not None:
            sets.append("#sh = :shown")
            names["#sh"], values[":shown"] = "shown", {"N": str(shown)}
        if where is not None:
            sets += ["#pch = :pch", "#pts = :pts"]
            names.update({"#pch": "post_channel", "#pts": "post_ts"})
            values.update({":pch": _s(where[0]), ":pts": _s(where[1])})
        return self._cond_update(_key(f"DIGEST#{key}", "DIGEST"), f"SET {', '.join(sets)} REMOVE #fl",
                                 "#fl = :tok", names, values)

    def digests_due(self, now: datetime, limit: int = 50) -> list[str]:
        """Digests touched up to ``now`` that may still have calls to show (the sweep's share)."""
        items = self._query(
            IndexName="due",
            KeyConditionExpression="due_pk = :d AND due_at <= :now",
            ExpressionAttributeValues={":d": _s(DIGEST_DUE), ":now": _s(iso_z(now))},
            max_items=limit,
        )
        return [i["PK"]["S"][len("DIGEST#"):] for i in items]

    def stop_tracking_digest(self, key: str, members: int) -> bool:
        """Every call of the digest is shown and none joined since: the sweep forgets it."""
        return self._cond_update(_key(f"DIGEST#{key}", "DIGEST"), "REMOVE #dpk, #dat", "#n = :n AND #sh = :n",
                                 {"#dpk": "due_pk", "#dat": "due_at", "#n": "members", "#sh": "shown"},
                                 {":n": {"N": str(members)}})

    def _cond_update(self, key: dict, update: str, condition: str, names: dict, values: dict) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._db.update_item(TableName=self._table, Key=key, UpdateExpression=update,
                                 ConditionExpression=condition, ExpressionAttributeNames=names,
                                 ExpressionAttributeValues=values)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
