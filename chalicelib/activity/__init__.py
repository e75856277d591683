"""Grant activity (issue 18): what was done with a grant. PURE: stdlib only.

* ``call``: a forwarded CloudTrail write event -> :class:`Call` (:func:`parse_call`);
* ``notable``: the one short list of actions called out on the card (:func:`notable`);
* ``tally``: the compact per-grant tally and its digest text (:func:`add`, :func:`digest_text`).

The I/O (envelope, covering grant, the table, Slack) is in ``chalicelib/usecases/activity.py``.
"""

from chalicelib.activity.call import Call, parse_call
from chalicelib.activity.notable import notable
from chalicelib.activity.tally import MAX_NOTABLE, add, digest_payload, digest_text, empty

__all__ = ["MAX_NOTABLE", "Call", "add", "digest_payload", "digest_text", "empty", "notable", "parse_call"]
