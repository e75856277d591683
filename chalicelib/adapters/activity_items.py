"""Grant activity's items in the one table (part of the DynamoDB store; see store.py).

* ``ACTIVITY#<eventID> / CLAIM``  one per CloudTrail write call counted: the dedupe
  (EventBridge redelivers, and a call may be forwarded by two rules); TTL 30 days.
* ``REQ#<request id> / ACTIVITY``  the grant's tally (chalicelib/activity/tally.py) as one
  JSON ``doc`` with a version ``v``; it lives and dies with the request's partition.

One call is counted by ONE transaction: the claim (``attribute_not_exists``) and the tally
put conditional on the version read just before. A claim already there cancels it (a
redelivery changes nothing); a tally moved meanwhile (another call of the same grant) is
re-read and tried again.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta
from typing import Callable

from ..domain.model import utc
from .alert_items import _key, _s

#: how long a counted call's claim is kept (EventBridge retries for 24 h at most)
CLAIM_DAYS = 30
ROUNDS = 8


class ActivityConflict(RuntimeError):
    """The tally kept moving under this call for :data:`ROUNDS` rounds (retried by Lambda)."""


class ActivityItems:
    """Mixed into :class:`~chalicelib.adapters.store.DynamoStore`."""

    def activity(self, request_id: str) -> dict | None:
        resp = self._db.get_item(TableName=self._table, Key=_key(f"REQ#{request_id}", "ACTIVITY"),
                                 ConsistentRead=True)
        item = resp.get("Item")
        return json.loads(item["doc"]["S"]) if item else None

    def record_activity(self, request_id: str, event_id: str, update: Callable[[dict | None], dict],
                        now: datetime) -> tuple[bool, dict | None]:
        """Count one call (``event_id``) in the grant's tally: ``update(old) -> new``.
        (True, the new tally), or (False, None) if this call was counted before."""
        from botocore.exceptions import ClientError

        ttl = {"N": str(int((utc(now) + timedelta(days=CLAIM_DAYS)).timestamp()))}
        claim = {"Put": {"TableName": self._table, "ConditionExpression": "attribute_not_exists(PK)",
                         "Item": {**_key(f"ACTIVITY#{event_id}", "CLAIM"), "request_id": _s(request_id),
                                  "ttl": ttl}}}
        for round_ in range(ROUNDS):
            if round_:  # many calls of one grant at once: spread the retries (jittered backoff)
                time.sleep(random.uniform(0, 0.05 * 2 ** min(round_, 5)))
            resp = self._db.get_item(TableName=self._table, Key=_key(f"REQ#{request_id}", "ACTIVITY"),
                                     ConsistentRead=True)
            item = resp.get("Item")
            version = int(item["v"]["N"]) if item else 0
            new = update(json.loads(item["doc"]["S"]) if item else None)
            tally = {"Put": {"TableName": self._table,
                             "Item": {**_key(f"REQ#{request_id}", "ACTIVITY"), "doc": _s(json.dumps(new)),
                                      "v": {"N": str(version + 1)}},
                             "ConditionExpression": "attribute_not_exists(PK)" if item is None else "v = :v",
                             **({} if item is None else {"ExpressionAttributeValues": {":v": {"N": str(version)}}})}}
            try:
                self._db.transact_write_items(TransactItems=[claim, tally])
                return True, new
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = exc.response.get("CancellationReasons") or []
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False, None
                if not (len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed"):
                    # no reasons given: tell a counted call from a moved tally by the claim
                    if self._db.get_item(TableName=self._table, Key=_key(f"ACTIVITY#{event_id}", "CLAIM"),
                                         ConsistentRead=True).get("Item"):
                        return False, None
        raise ActivityConflict(f"the tally of {request_id} kept moving; not counted")
