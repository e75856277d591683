"""No secret ever leaves in a log line, a Slack message or an HTTP reply.

The whole lifecycle (request, approvals, grant, list, use alert, sweep expiry) plus error
paths (a forged request, an unknown request id, Slack failing, IAM failing the grant, the
table missing) runs with every log record captured - every logger, as formatted JSON
with its extra fields and traceback, plus stdout/stderr - and with the Slack stand-in
recording every call's arguments (text, blocks, metadata). Then none of the secrets may
appear anywhere: the Slack signing secret, the bot token, the AWS secret access keys
(Drawbridge's own and every person's), the session token of the credentials the app
runs with, and the session credentials alice gets from her own AssumeRole.

Captured at INFO for the libraries and DEBUG for Drawbridge's own logger; botocore's
DEBUG output prints request headers (a session token included), which is why
docs/SECURITY.md says never to turn it on in a deployed stage.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone

import time_machine

from local.seed import client as aws
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, sign
from tests.fixtures import load_cloudtrail

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)
APP_SESSION_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKENfor+drawbridge/9f2c7c1d0e4b"


class Everything(logging.Handler):
    """Keeps each record whole: the JSON line Powertools would write (what CloudWatch gets),
    the message, every extra attribute, and the formatted traceback."""

    def __init__(self):
        from chalicelib.log import logger

        super().__init__(level=logging.DEBUG)
        self.powertools = logger().registered_formatter
        self.lines: list[str] = []

    def filter(self, record):  # Powertools puts a SuppressFilter on root handlers: see everything
        return True

    def emit(self, record):
        fields = {k: v for k, v in record.__dict__.items() if k not in ("args", "msg")}
        fields["message"] = record.getMessage()
        if record.exc_info:
            fields["traceback"] = logging.Formatter().formatException(record.exc_info)
        if record.name == "drawbridge":
            fields["powertools_json"] = self.powertools.format(record)
        self.lines.append(json.dumps(fields, default=str))


def test_no_secret_in_logs_slack_messages_or_http_replies(app_client, stack, slack, store, capfd, monkeypatch):
    from botocore.exceptions import ClientError

    from chalicelib import wiring
    from chalicelib.adapters.iam import IamGrants

    monkeypatch.setenv("AWS_SESSION_TOKEN", APP_SESSION_TOKEN)  # the app's clients are built after this
    wiring.reset()
    catch = Everything()
    root, own = logging.getLogger(), logging.getLogger("drawbridge")
    levels = (root.level, own.level)
    root.addHandler(catch)
    root.setLevel(logging.INFO)
    own.setLevel(logging.DEBUG)
    replies: list = []

    def keep(reply):
        replies.append((reply.status, reply.body))
        return reply

    try:
        with time_machine.travel(T0, tick=False) as clock:
            rid = re.search(r"req-\d{8}-[0-9a-f]{6}",
                            keep(app_client.command("alice", "prod admin 2h fixing incident 4521")).text).group(0)
            keep(app_client.command("alice", "help"))
            clock.shift(timedelta(minutes=2))
            keep(app_client.approve("bob", rid))
            keep(app_client.approve("bob", rid))  # refused: already approved
            keep(app_client.approve("carol", rid))
            keep(app_client.command("alice", "list"))
            sts = aws("sts", keys=stack.people["alice"])
            session = sts.assume_role(RoleArn="arn:aws:iam::222222222222:role/admin",
                                      RoleSessionName="alice")["Credentials"]
            clock.move_to(T0 + timedelta(minutes=5))
            replies.append(app_client.client.lambda_.invoke(
                "on_role_assumed", load_cloudtrail("assume_role_bastion_copy")).payload)

            # -- error paths ------------------------------------------------------------
            body = "token=x&user_id=U0ALICE001&text=prod+admin+1h+x"
            keep(app_client.raw("/slack/commands", body, sign(body, secret="not-the-secret")))  # forged: 401
            keep(app_client.click("dave", "approve_request", "req-20261112-000000"))  # unknown request
            slack.fail_next("chat.postMessage", times=3, status=500)  # Slack down for the next card
            keep(app_client.command("dave", "prod admin 1h checking a dashboard"))
            real_grant = IamGrants.grant

            def failing_grant(self, **kwargs):
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "AttachUserPolicy")

            monkeypatch.setattr(IamGrants, "grant", failing_grant)
            dave = store.open_for("dave")[0].request_id
            keep(app_client.approve("bob", dave))
            keep(app_client.approve("carol", dave))  # the grant fails: logged, card + DM + #security
            monkeypatch.setattr(IamGrants, "grant", real_grant)
            monkeypatch.setenv("DRAWBRIDGE_TABLE", "no-such-table")
            keep(app_client.command("alice", "list"))  # unexpected error: the user sees a ref only
            monkeypatch.setenv("DRAWBRIDGE_TABLE", "drawbridge-test")

            clock.move_to(store.get(rid).expires_at + timedelta(seconds=30))
            replies.append(app_client.sweep().payload)
    finally:
        root.removeHandler(catch)
        root.setLevel(levels[0])
        own.setLevel(levels[1])

    out, err = capfd.readouterr()
    logs = "\n".join(catch.lines) + out + err
    posted = json.dumps([c._asdict() for c in slack.calls], default=str)
    http = json.dumps(replies, default=str)

    # the haystacks are real: the story happened and its errors were logged
    assert "unexpected error" in logs and "Traceback" in logs and "AccessDenied" in logs
    assert "access_granted" in posted and "role_assumed" in posted and "grant_failed" in posted
    assert any(status == 401 for status, *_ in [r for r in replies if isinstance(r, tuple)])
    assert len(catch.lines) >= 15

    secrets = {
        "Slack signing secret": SIGNING_SECRET,
        "Slack bot token": BOT_TOKEN,
        "Drawbridge's AWS secret access key": stack.service.secret_access_key,
        "the app's AWS session token": APP_SESSION_TOKEN,
        "alice's assumed-role secret key": session["SecretAccessKey"],
        "alice's assumed-role session token": session["SessionToken"],
        **{f"{p}'s AWS secret access key": k.secret_access_key for p, k in stack.people.items()},
    }
    leaks = [f"{name} in {where}" for name, value in secrets.items()
             for where, text in (("logs", logs), ("Slack messages", posted), ("HTTP replies", http))
             if value in text]
    assert leaks == []
