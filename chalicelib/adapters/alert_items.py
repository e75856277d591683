"""The alert path's items in the one table (part of the DynamoDB store; see store.py).

* ``ALERT#<key> / ALERT``        one record per CloudTrail call (dedupe + audit)
* ``ALERTGROUP#<key> / GROUP``   denied attempts of one caller on one target in one window

Ways in (role assumptions, root sessions, sign-ins...) and their burst digests are in
alert_calls.py; this module keeps the claim used by identity changes and failed attempts.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from ..domain.model import iso_z, utc


def _s(value: str) -> dict:
    return {"S": value}


def _key(pk: str, sk: str) -> dict:
    return {"PK": _s(pk), "SK": _s(sk)}


def day_keys(at: datetime, suffix: str) -> dict:
    """The ``by_day`` index keys of something that happened ``at`` (store.py)."""
    at = utc(at)
    return {"day_pk": _s(f"DAY#{at:%Y-%m-%d}"), "day_sk": _s(f"{iso_z(at)}#{suffix}")}


#: the alert records that are denied attempts, in the access review (usecases/access_review.py)
DENIED_KINDS = ("uncovered", "failed_attempt")


def attempt_day_keys(key: str, record: dict) -> dict:
    """``by_day`` keys for an alert record that is a denied attempt (by its CloudTrail event
    time), none for anything else (a covered use is read per grant, through ``uses``)."""
    if record.get("kind") not in DENIED_KINDS or not record.get("event_time"):
        return {}
    from ..domain.model import parse_iso

    return day_keys(parse_iso(record["event_time"]), f"ALERT#{key}")


class AlertItems:
    """Mixed into :class:`~chalicelib.adapters.store.DynamoStore` (``_db``, ``_table``,
    ``_put_new`` and ``_query`` come from there)."""

    # -- security alerts and grant usage -------------------------------------------
    def claim_alert(self, key: str, record: dict, now: datetime, keep_days: int = 400) -> bool:
        """Record one alert per AssumeRole call; False if it was already handled."""
        ttl = int((utc(now) + timedelta(days=keep_days)).timestamp())
        return self._put_new({**_key(f"ALERT#{key}", "ALERT"), "doc": _s(json.dumps(record)),
                              "ttl": {"N": str(ttl)}, **attempt_day_keys(key, record)})

    def release_alert(self, key: str) -> None:
        """Forget a claim whose alert could not be posted, so a retry posts it."""
        self._db.delete_item(TableName=self._table, Key=_key(f"ALERT#{key}", "ALERT"))

    def alert(self, key: str) -> dict | None:
        resp = self._db.get_item(TableName=self._table, Key=_key(f"ALERT#{key}", "ALERT"),
                                 ConsistentRead=True)
        item = resp.get("Item")
        return json.loads(item["doc"]["S"]) if item else None

    # -- failed attempts grouped into one Slack line ----------------------------------
    # Names: COUNT, OWNER and TTL are DynamoDB reserved words; every attribute goes by #name.
    _GROUP_NAMES = {"#c": "count", "#f": "first", "#l": "last", "#o": "owner", "#oa": "owned_at",
                    "#ttl": "ttl", "#ts": "ts", "#ch": "channel"}

    def join_alert_group(self, key: str, member: str, event_time: datetime, now: datetime,
                         keep_days: int = 400) -> dict:
        """Count one failed attempt (``member``: its alert key) in the group ``key`` and
        return the group after the count: ``count``, ``first`` / ``last`` (ISO ``Z`` event
        times), ``owner`` (the member that posts the group's line: the first to join),
        ``owned_at``, and ``channel`` / ``ts`` once the line is posted. Atomic: concurrent
        joiners get distinct counts and agree on one owner."""
        t = iso_z(event_time)
        ttl = int((utc(now) + timedelta(days=keep_days)).timestamp())
        resp = self._db.update_item(
            TableName=self._table, Key=_key(f"ALERTGROUP#{key}", "GROUP"),
            UpdateExpression=("ADD #c :one SET #f = if_not_exists(#f, :t), #l = if_not_exists(#l, :t), "
                              "#o = if_not_exists(#o, :me), #oa = if_not_exists(#oa, :now), "
                              "#ttl = if_not_exists(#ttl, :ttl)"),
            ExpressionAttributeNames={k: v for k, v in self._GROUP_NAMES.items() if k not in ("#ts", "#ch")},
            ExpressionAttributeValues={":one": {"N": "1"}, ":t": _s(t), ":me": _s(member),
                                       ":now": _s(iso_z(now)), ":ttl": {"N": str(ttl)}},
            ReturnValues="ALL_NEW",
        )
        group = self._group(resp["Attributes"])
        # Events arrive out of order: keep first = min and last = max of the event times.
        for name, op, better in (("#f", ">", t < group["first"]), ("#l", "<", t > group["last"])):
            if better:
                self._update_if(key, f"SET {name} = :t", f"{name} {op} :t", {name: self._GROUP_NAMES[name]},
                                {":t": _s(t)})
        group["first"], group["last"] = min(group["first"], t), max(group["last"], t)
        return group

    def take_alert_group(self, key: str, old_owner: str, member: str, now: datetime) -> bool:
        """Become the owner of a group whose owner never saved a line (it died posting);
        False if the owner changed or a line exists meanwhile."""
        return self._update_if(key, "SET #o = :me, #oa = :now", "#o = :old AND attribute_not_exists(#ts)",
                               {"#o": "owner", "#oa": "owned_at", "#ts": "ts"},
                               {":me": _s(member), ":now": _s(iso_z(now)), ":old": _s(old_owner)})

    def save_alert_group_message(self, key: str, member: str, channel: str, ts: str) -> bool:
        """Remember the group's line; only its owner may, and only once."""
        return self._update_if(key, "SET #ch = :ch, #ts = :ts", "#o = :me AND attribute_not_exists(#ts)",
                               {"#ch": "channel", "#ts": "ts", "#o": "owner"},
                               {":ch": _s(channel), ":ts": _s(ts), ":me": _s(member)})

    def leave_alert_group(self, key: str, member: str) -> None:
        """Undo a join whose line could not be posted or updated (the retry joins again):
        the count goes down by one, and an owner without a line gives ownership up."""
        if not self._update_if(key, "ADD #c :minus REMOVE #o, #oa", "#o = :me AND attribute_not_exists(#ts)",
                               {"#c": "count", "#o": "owner", "#oa": "owned_at", "#ts": "ts"},
                               {":minus": {"N": "-1"}, ":me": _s(member)}):
            self._update_if(key, "ADD #c :minus", "attribute_exists(PK)", {"#c": "count"},
                            {":minus": {"N": "-1"}})

    def alert_group(self, key: str) -> dict | None:
        resp = self._db.get_item(TableName=self._table, Key=_key(f"ALERTGROUP#{key}", "GROUP"),
                                 ConsistentRead=True)
        item = resp.get("Item")
        return self._group(item) if item else None

    @staticmethod
    def _group(item: dict) -> dict:
        def s(name: str) -> str | None:
            return item[name]["S"] if name in item else None

        return {"count": int(item.get("count", {}).get("N", "0")), "first": s("first"), "last": s("last"),
                "owner": s("owner"), "owned_at": s("owned_at"), "channel": s("channel"), "ts": s("ts")}

    def _update_if(self, key: str, update: str, condition: str, names: dict, values: dict) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._db.update_item(TableName=self._table, Key=_key(f"ALERTGROUP#{key}", "GROUP"),
                                 UpdateExpression=update, ConditionExpression=condition,
                                 ExpressionAttributeNames=names, ExpressionAttributeValues=values)
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
