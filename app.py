"""Drawbridge: just-in-time AWS access through Slack (Chalice entry points only).

Each handler hands its event to chalicelib.handlers; heavy imports (boto3,
slack_sdk, Powertools) happen there, on first use, never at import time.
"""

import sys

from chalice import Chalice, Cron, Rate

from chalicelib.event_pattern import ACTIVITY_PATTERN_BASTION, ALERT_PATTERN, HEARTBEAT_PATTERN


def _refuse_bare_chalice_deploy(argv: list[str]) -> None:
    """``chalice deploy`` / ``chalice package`` run by hand would ship an app without its
    table, its IAM policies and the AssumeRole rule's state (they come from a merge template
    that ``make package`` renders). Say which make target to use instead of failing later.
    Only the chalice CLI gets here: Lambda and the tests never have it as ``argv[0]``."""
    if not argv or not argv[0].endswith("chalice") or len(argv) < 2:
        return
    verb = next((a for a in argv[1:] if not a.startswith("-")), "")
    if verb == "deploy" or (verb == "package" and "--merge-template" not in argv):
        stage = argv[argv.index("--stage") + 1] if "--stage" in argv[:-1] else "dev"
        target = "make deploy STAGE={0} DEPLOY_BUCKET=<bucket>" if verb == "deploy" else "make package STAGE={0}"
        raise SystemExit(f"drawbridge: use `{target.format(stage)}` instead of `chalice {verb}` "
                         "(it renders the IAM policies, the table and the rule state; docs/DEPLOY.md)")


_refuse_bare_chalice_deploy(sys.argv)

app = Chalice(app_name="drawbridge", configure_logs=False)  # Powertools Logger owns "drawbridge"
FORM = ["application/x-www-form-urlencoded"]


@app.middleware("all")
def observe(event, get_response):
    from chalicelib import handlers

    kind = "http" if hasattr(event, "raw_body") else type(event).__name__
    payload = getattr(event, "event", None)  # a worker invocation carries the caller's correlation id
    handlers.begin(app, kind, payload.get("correlation_id") if isinstance(payload, dict) else None,
                   getattr(event, "context", None))
    return get_response(event)


@app.route("/slack/commands", methods=["POST"], content_types=FORM)
def slack_commands():
    from chalicelib import handlers

    return handlers.slack_command(app)


@app.route("/slack/interactions", methods=["POST"], content_types=FORM)
def slack_interactions():
    from chalicelib import handlers

    return handlers.slack_interaction(app)


@app.route("/slack/events", methods=["POST"], content_types=["application/json"])
def slack_events():
    from chalicelib import handlers

    return handlers.slack_event(app)


@app.lambda_function(name="worker")
def worker(event, context):
    from chalicelib import handlers

    return handlers.worker(event)


@app.schedule(Rate(1, unit=Rate.MINUTES), name="sweep")
def sweep(event):
    from chalicelib import handlers

    return handlers.sweep()


# The weekly access review (issue 18): last week (Monday to Monday, UTC) in the security
# channel with its CSV and JSON export, once per week however often the schedule fires
# (usecases/access_review.py; docs/decisions/0011-access-review.md).
@app.schedule(Cron(0, 9, "?", "*", "MON", "*"), name="weekly_review")
def weekly_review(event):
    from chalicelib import handlers

    return handlers.weekly_review()


# Every way into a watched account (AssumeRole*, AssumeRoot, GetFederationToken, root and
# IAM-user console sign-ins) and IAM changes to a person's credentials: one rule, one
# handler, the alert path (chalicelib/event_pattern.py). It raises when an alert could
# not be posted, so Lambda retries it and then hands it to the on-failure destination.
@app.on_cw_event(ALERT_PATTERN, name="on_role_assumed")
def on_role_assumed(event):
    from chalicelib import handlers

    return handlers.role_assumed(event.to_dict())


# What was done with a grant: write management calls by role sessions, forwarded by the
# member accounts' activity rule (chalicelib/event_pattern.py activity_pattern); only the
# catalog's JIT roles are counted, under the covering grant (usecases/activity.py).
@app.on_cw_event(ACTIVITY_PATTERN_BASTION, name="on_activity")
def on_activity(event):
    from chalicelib import handlers

    return handlers.activity(event.to_dict())


# The alert path's heartbeat, forwarded by every member account and the bastion's other
# Regions every 5 minutes: recorded here, told by the sweep when one stops (usecases/liveness.py).
# Its own rule and function: a custom source can be put by anyone the bastion bus admits,
# so it never reaches on_role_assumed, and reserved concurrency caps what a flood costs.
@app.on_cw_event(HEARTBEAT_PATTERN, name="on_heartbeat")
def on_heartbeat(event):
    from chalicelib import handlers

    return handlers.heartbeat(event.to_dict())
