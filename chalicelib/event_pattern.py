"""The EventBridge pattern for "someone assumed a role": the single source of truth.

Used by ``app.py`` (``@app.on_cw_event``), by the ``--merge-template`` that sets
the rule state, and mirrored verbatim in ``policies/member-account.yaml``
(``tests/unit/test_event_pattern.py`` fails if the two drift apart).

Deliberate choices:

* **Failures are kept.** There is no ``"errorCode": [{"exists": false}]``: a denied
  ``AssumeRole`` on a production role belongs in the audit trail, so the handler
  receives it and ``chalicelib.alerts.decide_alert`` classifies it as a failed attempt.
* **AWS services are dropped.** ``userIdentity.type`` ``AWSService`` is an AWS service
  (Lambda, ECS, EC2 instance profiles, ...) assuming its own service role. In a
  production account that happens thousands of times a day, is never a person and
  would otherwise reach the security channel as "no approved grant". Dropping it here
  also saves the cross-account ``PutEvents`` for every one of them. (``anything-but``
  only matches when the field exists; CloudTrail always writes ``userIdentity.type``.)

Import-time cost is nil: stdlib only, plain constants.
"""

from __future__ import annotations

import json

ASSUME_ROLE_EVENT_NAMES = ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity")

ASSUME_ROLE_PATTERN: dict = {
    "source": ["aws.sts"],
    "detail-type": ["AWS API Call via CloudTrail"],
    "detail": {
        "eventName": list(ASSUME_ROLE_EVENT_NAMES),
        "userIdentity": {"type": [{"anything-but": ["AWSService"]}]},
    },
}

# AssumeRole* are *read-only* management events (CloudTrail "readOnly": true).
# EventBridge delivers read-only management events only to rules in this state; a
# rule in plain "ENABLED" (what Chalice's @app.on_cw_event deploys) may never see a
# single AssumeRole. The state can be set from the API / CloudFormation only, so the
# deployed rule gets it through `chalice package --merge-template`, and the
# member-account forwarding rule carries it in its template.
RULE_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


def pattern_json() -> str:
    """The pattern as the JSON string ``PutRule`` / CloudFormation ``EventPattern`` take."""
    return json.dumps(ASSUME_ROLE_PATTERN, separators=(",", ":"), sort_keys=True)
