"""The EventBridge pattern for "a way into an account Drawbridge watches": the single source of truth.

Used by ``app.py`` (``@app.on_cw_event`` of ``on_role_assumed``) and by the
``--merge-template`` that sets the rule state; the member accounts and the bastion's other
Regions forward it, with the heartbeat, as :data:`FORWARD_PATTERN`, verbatim in
``policies/member-account.yaml`` and ``policies/bastion-regions.yaml``
(``tests/unit/test_event_pattern.py`` fails if they drift apart, and checks every CloudTrail
fixture against each pattern with moto's matcher).

One pattern, five branches under ``$or`` (EventBridge ORs the values *within* a field,
so ``"source": ["aws.sts", "aws.signin"]`` next to one ``eventName`` list would also
match, say, an ``aws.signin`` event named ``AssumeRole``; each source gets its own
event names and identity filter instead):

* ``aws.sts`` API calls: ``AssumeRole``, ``AssumeRoleWithSAML``,
  ``AssumeRoleWithWebIdentity`` (the role assumptions), ``AssumeRoot`` (a privileged root
  session on a member account) and ``GetFederationToken`` (federated-user credentials
  minted by an IAM user: no grant can cover them).
* ``aws.signin`` console sign-ins: ``ConsoleLogin`` of the **root user** or an **IAM
  user** (federated and role sign-ins are the ``AssumeRole*`` they came from).
* ``aws.iam`` API calls that change how a person can sign in: MFA devices enabled,
  deactivated or deleted, access keys created, console passwords created or changed
  (the handler alerts only when the target is a catalog person's bastion IAM user).
* ``aws.cloudtrail`` and ``aws.events`` API calls that blind this very path (two
  branches, one per source; the ``aws.events`` one per request field): a trail stopped,
  deleted, updated or given other event selectors, and Drawbridge's rules
  (:data:`WATCHED_RULE_PREFIXES`: ``StackSet-drawbridge-*``, the generated names the
  member and bastion-regions StackSets give the forwarding rules, and ``drawbridge-*``,
  which covers the watchdog's fixed name :data:`WATCHDOG_RULE_NAME`; the SCP
  ``policies/scp-protect-drawbridge.json`` protects both) deleted, disabled or stripped
  of their targets. Alerted loudly, successes and failures
  (:mod:`chalicelib.usecases.tamper_alert`). ``PutRule`` / ``PutTargets`` are not
  watched: every StackSet update makes them in every account and Region, and the SCP
  denies them to everyone but the StackSet execution role. The ``drawbridge-`` prefix
  also reaches the bastion's own rules: its Chalice stack (``drawbridge-<stage>``) gets
  generated names starting ``drawbridge-``, so deleting, disabling or emptying one of
  them in the bastion now alerts too, which is wanted (they are the alert path's other
  end). They come from the app's own CloudFormation stack, whose updates change a rule
  in place (``PutRule`` / ``PutTargets``, not watched); only tearing the stack down
  (``DeleteRule``) or a target being dropped (``RemoveTargets``) alerts. No member
  account has other ``drawbridge-*`` rules of ours.

The member accounts and the bastion's other Regions forward one more branch
(:data:`FORWARD_PATTERN`): ``drawbridge.heartbeat`` events. An EventBridge Scheduler
schedule in each of them puts one on its own default bus every
:data:`HEARTBEAT_INTERVAL_MINUTES` minutes, so it travels the same forwarding rule, role
and bastion bus as the CloudTrail events; at the bastion its own rule
(:data:`HEARTBEAT_PATTERN`, ``on_heartbeat``) records it, and the sweep notices when one
stops coming (:mod:`chalicelib.usecases.liveness`, docs/decisions/0009-alert-path-heartbeat.md).
They also carry the two tampering branches alone in a second rule (:data:`TAMPER_PATTERN`).

Deliberate choices:

* **Failures are kept.** There is no ``"errorCode": [{"exists": false}]``: a denied
  ``AssumeRole`` on a production role belongs in the audit trail, so the handler
  receives it and ``chalicelib.alerts.decide_alert`` classifies it as a failed attempt
  (failed console sign-ins likewise).
* **AWS services are dropped** from the STS branch. ``userIdentity.type`` ``AWSService``
  is an AWS service (Lambda, ECS, EC2 instance profiles, ...) assuming its own service
  role. In a production account that happens thousands of times a day, is never a person
  and would otherwise reach the security channel as "no approved grant". Dropping it here
  also saves the cross-account ``PutEvents`` for every one of them. (``anything-but``
  only matches when the field exists; CloudTrail always writes ``userIdentity.type``.)
* **The member accounts forward the same pattern** (plus the heartbeat). Their IAM events are forwarded too
  and ignored by the handler (only the bastion's people are watched); IAM changes are
  rare, so one pattern everywhere is worth more than the few forwarded events saved.

Import-time cost is nil: stdlib only, plain constants.
"""

from __future__ import annotations

import json

API_CALL = "AWS API Call via CloudTrail"
CONSOLE_SIGN_IN = "AWS Console Sign In via CloudTrail"

ASSUME_ROLE_EVENT_NAMES = ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity")
#: other STS calls that hand out credentials no Drawbridge grant can cover
STS_ACCESS_EVENT_NAMES = ("AssumeRoot", "GetFederationToken")
SIGN_IN_EVENT_NAMES = ("ConsoleLogin",)
SIGN_IN_IDENTITY_TYPES = ("Root", "IAMUser")
#: IAM calls that change a person's MFA devices, access keys or console password
IAM_CHANGE_EVENT_NAMES = (
    "CreateAccessKey",
    "CreateLoginProfile",
    "DeactivateMFADevice",
    "DeleteVirtualMFADevice",
    "EnableMFADevice",
    "UpdateLoginProfile",
)
#: CloudTrail calls that stop, remove or narrow what a trail records
TRAIL_TAMPER_EVENT_NAMES = ("DeleteTrail", "PutEventSelectors", "StopLogging", "UpdateTrail")
#: EventBridge calls that remove or switch off a rule (``requestParameters.name``) ...
RULE_TAMPER_EVENT_NAMES = ("DeleteRule", "DisableRule")
#: ... or take its targets away (``requestParameters.rule``)
TARGET_TAMPER_EVENT_NAMES = ("RemoveTargets",)
#: the forwarding rules' names: CloudFormation names them after their StackSet's stacks
#: (``StackSet-drawbridge-member-…``, ``StackSet-drawbridge-bastion-regions-…``)
FORWARDING_RULE_PREFIX = "StackSet-drawbridge-"
#: the watchdog rule's fixed name (``TamperWatchRule`` in both templates): a generated
#: name's shape is CloudFormation's to choose, a fixed one is what the SCP can name
WATCHDOG_RULE_NAME = "drawbridge-watchdog"
#: every rule name the tamper branch watches: the generated forwarding-rule names and
#: ``drawbridge-*`` (the watchdog, and the bastion's own rules: see the module docstring)
WATCHED_RULE_PREFIXES = (FORWARDING_RULE_PREFIX, "drawbridge-")
_WATCHED_RULES = [{"prefix": prefix} for prefix in WATCHED_RULE_PREFIXES]
#: the heartbeat's envelope (a custom source: ``aws.*`` sources cannot be put)
HEARTBEAT_SOURCE = "drawbridge.heartbeat"
HEARTBEAT_DETAIL_TYPE = "Drawbridge Heartbeat"
#: how often the templates' schedules put one (``rate(5 minutes)``)
HEARTBEAT_INTERVAL_MINUTES = 5

ALERT_PATTERN: dict = {
    "$or": [
        {
            "source": ["aws.sts"],
            "detail-type": [API_CALL],
            "detail": {
                "eventName": [*ASSUME_ROLE_EVENT_NAMES, *STS_ACCESS_EVENT_NAMES],
                "userIdentity": {"type": [{"anything-but": ["AWSService"]}]},
            },
        },
        {
            "source": ["aws.signin"],
            "detail-type": [CONSOLE_SIGN_IN],
            "detail": {
                "eventName": list(SIGN_IN_EVENT_NAMES),
                "userIdentity": {"type": list(SIGN_IN_IDENTITY_TYPES)},
            },
        },
        {
            "source": ["aws.iam"],
            "detail-type": [API_CALL],
            "detail": {"eventName": list(IAM_CHANGE_EVENT_NAMES)},
        },
        {
            "source": ["aws.cloudtrail"],
            "detail-type": [API_CALL],
            "detail": {"eventName": list(TRAIL_TAMPER_EVENT_NAMES)},
        },
        {
            "source": ["aws.events"],
            "detail-type": [API_CALL],
            "detail": {
                "$or": [
                    {"eventName": list(RULE_TAMPER_EVENT_NAMES),
                     "requestParameters": {"name": list(_WATCHED_RULES)}},
                    {"eventName": list(TARGET_TAMPER_EVENT_NAMES),
                     "requestParameters": {"rule": list(_WATCHED_RULES)}},
                ]
            },
        },
    ]
}

#: the name deploy/ knows the bastion rule's pattern by (it is the same one)
ASSUME_ROLE_PATTERN: dict = ALERT_PATTERN

#: the two branches that watch the path itself: the member and bastion-regions templates
#: also carry them alone, in a second rule (the watchdog), so deleting or disabling one
#: forwarding rule is still reported by the other (a rule never sees its own deletion:
#: CloudTrail's record arrives after the rule is gone)
TAMPER_PATTERN: dict = {"$or": ALERT_PATTERN["$or"][3:5]}

#: the heartbeat as it reaches the bastion; its own rule and handler (``on_heartbeat``),
#: never ``on_role_assumed``: a custom source can be put by anyone the bastion bus lets
#: in, so it must not reach the alert handler's reserved capacity
HEARTBEAT_PATTERN: dict = {"source": [HEARTBEAT_SOURCE], "detail-type": [HEARTBEAT_DETAIL_TYPE]}

#: what the member accounts and the bastion's other Regions forward to the bastion bus:
#: the ways in, the tampering, and the path's own heartbeat (chalicelib/usecases/liveness.py)
FORWARD_PATTERN: dict = {"$or": [*ALERT_PATTERN["$or"], HEARTBEAT_PATTERN]}

# AssumeRole* are *read-only* management events (CloudTrail "readOnly": true).
# EventBridge delivers read-only management events only to rules in this state; a
# rule in plain "ENABLED" (what Chalice's @app.on_cw_event deploys) may never see a
# single AssumeRole. The state can be set from the API / CloudFormation only, so the
# deployed rule gets it through `chalice package --merge-template`, and the
# member-account forwarding rule carries it in its template. (Sign-ins and IAM changes
# are not read-only; this state delivers them too.)
RULE_STATE = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


def pattern_json(pattern: dict | None = None) -> str:
    """A pattern (the alert pattern by default) as the JSON string ``PutRule`` /
    CloudFormation ``EventPattern`` take."""
    return json.dumps(ALERT_PATTERN if pattern is None else pattern, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------------------
# Grant activity (issue 18; docs/decisions/0010-grant-activity.md). A separate pattern and
# rule from the alert path's: other events, another handler, another rule state.

#: the sources whose write calls are never activity: STS is the alert path's (AssumeRole*
#: are read-only anyway, and the rest hand out credentials, they change nothing)
ACTIVITY_EXCLUDED_SOURCES = ("aws.sts",)
#: the same, as CloudTrail's ``eventSource``
ACTIVITY_EXCLUDED_EVENT_SOURCES = ("sts.amazonaws.com",)

#: write management events are delivered to a rule in plain ENABLED (only read-only
#: management events need RULE_STATE above)
ACTIVITY_RULE_STATE = "ENABLED"


def activity_pattern(role_arns) -> dict:
    """What a member account forwards as grant activity: the write management events
    (``readOnly`` false, ``managementEvent`` true: booleans in every CloudTrail record)
    made by sessions of its JIT roles (``sessionContext.sessionIssuer.arn`` is the role's
    ARN), failures included. ``policies/member-account.yaml`` carries exactly this pattern
    with its own roles' ARNs (``tests/unit/test_activity_pattern.py`` renders it)."""
    arns = sorted(set(role_arns))
    if not arns:
        raise ValueError("an activity pattern needs at least one role ARN")
    return _role_session_writes({"sessionContext": {"sessionIssuer": {"arn": arns}}})


def _role_session_writes(issuer: dict) -> dict:
    """Write management events of assumed-role sessions (``issuer``: more of ``userIdentity``)."""
    return {
        # only AWS's own sources ("aws." cannot be used with PutEvents: nobody can forge one)
        "source": [{"prefix": "aws."}],
        "detail-type": [API_CALL],
        "detail": {
            "eventSource": [{"anything-but": list(ACTIVITY_EXCLUDED_EVENT_SOURCES)}],
            "readOnly": [False],
            "managementEvent": [True],
            "userIdentity": {"type": ["AssumedRole"], **issuer},
        },
    }


#: the bastion's rule (``on_activity``): the same events from any role session. The JIT
#: roles are the catalog's, which is not read at import; the handler keeps only events
#: whose session issuer is a catalog role (the member accounts forward nothing else).
ACTIVITY_PATTERN_BASTION: dict = _role_session_writes({})


def activity_pattern_json(role_arns) -> str:
    return json.dumps(activity_pattern(role_arns), separators=(",", ":"), sort_keys=True)
