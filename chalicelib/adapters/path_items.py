"""The alert path's heartbeats in the one table (part of the DynamoDB store; see store.py).

* ``PATH / <account>#<region>``   one item per forwarding path that ever sent a heartbeat:
  ``last_seen`` (when its last heartbeat arrived), and while it is silent ``silent_since``
  (the last heartbeat before the silence), ``silent_batch`` (the sweep message that tells
  it), ``silent_posted`` (that message is shown), ``restored_at`` (a heartbeat came back)
  and ``restore_batch`` (the sweep message that tells the return).
* ``PATH / <account>#*``   a catalog account no heartbeat has come from yet: ``expected_since``
  (when the sweep first missed it), ``unheard_posted`` (its "never heard" alert is shown) and
  ``heard_at`` (the heartbeat that ended the wait, fixed before it is told); deleted once
  that is told (or nothing was shown), and when the account leaves the catalog.

One partition: the sweep reads every path with one Query a minute (accounts x Regions,
a few hundred small items at most). Times are ISO ``Z`` strings, which sort as times.
"""

from __future__ import annotations

from datetime import datetime

from ..domain.model import iso_z

PATH_PK = "PATH"
_FIELDS = ("last_seen", "silent_since", "silent_batch", "silent_posted", "restored_at", "restore_batch",
           "expected_since", "unheard_posted", "heard_at")


def _path(item: dict) -> dict:
    account, _, region = item["SK"]["S"].partition("#")
    return {"account": account, "region": region,
            **{f: item[f]["S"] if f in item else None for f in _FIELDS}}


class PathItems:
    """Mixed into :class:`~chalicelib.adapters.store.DynamoStore` (``_db``, ``_table``,
    ``_query`` come from there)."""

    def _path_key(self, account: str, region: str) -> dict:
        return {"PK": {"S": PATH_PK}, "SK": {"S": f"{account}#{region}"}}

    def path_beat(self, account: str, region: str, now: datetime) -> dict:
        """A heartbeat of this path arrived at ``now``: ``last_seen`` only ever moves
        forward. Returns the path as it is after."""
        from botocore.exceptions import ClientError

        key = self._path_key(account, region)
        try:
            resp = self._db.update_item(
                TableName=self._table, Key=key, UpdateExpression="SET last_seen = :now",
                ConditionExpression="attribute_not_exists(last_seen) OR last_seen < :now",
                ExpressionAttributeValues={":now": {"S": iso_z(now)}}, ReturnValues="ALL_NEW")
            return _path(resp["Attributes"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True)["Item"]
        return _path(item)

    def path_create(self, account: str, region: str, fields: dict) -> bool:
        """Put a path item that does not exist yet; False if it does."""
        return self._put_new({**self._path_key(account, region), **{f: {"S": v} for f, v in fields.items()}})

    def path_delete(self, account: str, region: str, *, expect: dict) -> bool:
        """Delete a path item whose ``expect`` fields have those values; False if they do not."""
        names = {f"#e{i}": f for i, f in enumerate(expect)}
        values = {f":e{i}": {"S": v} for i, v in enumerate(expect.values())}
        return _unless_condition_fails(
            self._db.delete_item, TableName=self._table, Key=self._path_key(account, region),
            ConditionExpression=" AND ".join(f"#e{i} = :e{i}" for i in range(len(expect))),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def paths(self) -> list[dict]:
        """Every path that ever sent a heartbeat, and the markers (region ``*``) of the catalog
        accounts waited for."""
        return [_path(i) for i in self._query(
            KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": PATH_PK}},
            ConsistentRead=True)]

    def path_update(self, account: str, region: str, *, set_: dict | None = None, remove: tuple = (),
                    expect: dict) -> bool:
        """Set / remove fields of a path on condition that each ``expect`` field has that
        value (None: is absent); False if it does not."""
        if not set_ and not remove:
            raise ValueError("path_update needs something to set or remove")

        names, values, conds = {}, {}, []
        for i, (f, v) in enumerate(expect.items()):
            names[f"#e{i}"] = f
            if v is None:
                conds.append(f"attribute_not_exists(#e{i})")
            else:
                values[f":e{i}"] = {"S": v}
                conds.append(f"#e{i} = :e{i}")
        parts = []
        if set_:
            sets = []
            for i, (f, v) in enumerate(set_.items()):
                names[f"#s{i}"], values[f":s{i}"] = f, {"S": v}
                sets.append(f"#s{i} = :s{i}")
            parts.append("SET " + ", ".join(sets))
        if remove:
            for i, f in enumerate(remove):
                names[f"#r{i}"] = f
            parts.append("REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove))))
        kwargs = {"ExpressionAttributeValues": values} if values else {}
        return _unless_condition_fails(
            self._db.update_item, TableName=self._table, Key=self._path_key(account, region),
            UpdateExpression=" ".join(parts), ConditionExpression=" AND ".join(["attribute_exists(PK)", *conds]),
            ExpressionAttributeNames=names, **kwargs)


def _unless_condition_fails(call, **kwargs) -> bool:
    """Make a conditional write: True if it was made, False if its condition did not hold."""
    from botocore.exceptions import ClientError

    try:
        call(**kwargs)
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
