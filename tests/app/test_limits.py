"""How many concurrent grants one person can hold, and what happens at the limit.

Each grant is one customer-managed policy attached to the IAM user (see
chalicelib/policy.py); IAM allows 10 attached managed policies per user by
default. moto does not enforce that quota, so Drawbridge enforces it itself,
twice: on request (open requests in the table) and on grant (what IAM has).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import time_machine

from chalicelib.domain.model import GrantStatus
from chalicelib.policy import DEFAULT_MANAGED_POLICIES_PER_USER, grant_policy, iam_size
from local.seed import client as aws

T0 = datetime(2026, 11, 12, 9, 0, tzinfo=timezone.utc)


def _rid(text: str) -> str:
    return re.search(r"req-\d{8}-[0-9a-f]{6}", text).group(0)


def test_grant_fits_many_times_in_a_managed_policy_but_few_times_inline():
    doc = grant_policy("arn:aws:iam::222222222222:role/admin", T0, "req-20261112-0a11ce")
    size = iam_size(doc)
    assert 250 <= size <= 300  # measured: 286 non-whitespace characters
    assert 2048 // size == 7  # as user inline policies, 7 grants would exhaust the user's budget
    assert size < 6144  # one grant per managed policy leaves ample room


def test_a_person_holds_at_most_ten_open_requests(app_client, stack, slack, store, monkeypatch):
    # dev/admin allows self-approval; use bob so each request is granted by himself at once.
    # Ten distinct roles do not exist in the sample catalog, so fill the table with open requests.
    from chalicelib import wiring

    with time_machine.travel(T0, tick=False):
        svc = wiring.service()
        monkeypatch.setattr(svc, "max_open_per_user", 1)
        first = app_client.command("bob", "dev admin 1h")
        assert "waiting for approval" in first.text
        before = len(slack.messages())
        second = app_client.command("bob", "prod readonly 1h checking dashboards")
        assert second.text.startswith("you already have 1 pending or active requests")
        assert len(slack.messages()) == before
        assert len(store.open_for("bob")) == 1


def test_iam_quota_reached_fails_the_grant_cleanly(app_client, stack, slack, store):
    iam = aws("iam", keys=stack.service)
    for i in range(DEFAULT_MANAGED_POLICIES_PER_USER):  # e.g. MFA self-service and team policies
        arn = iam.create_policy(PolicyName=f"team-{i}", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iam:GetUser", "Resource": "*"}]}))["Policy"]["Arn"]
        iam.attach_user_policy(UserName="bob", PolicyArn=arn)

    with time_machine.travel(T0, tick=False):
        rid = _rid(app_client.command("bob", "dev admin 1h").text)
        app_client.approve("bob", rid)

    req = store.get(rid)
    assert req.grant_status is GrantStatus.FAILED
    assert "already has 10 managed policies attached" in req.note
    names = [p["PolicyName"] for p in iam.list_attached_user_policies(UserName="bob")["AttachedPolicies"]]
    assert len(names) == 10 and not any(n.startswith("drawbridge-") for n in names)
    (dm,) = slack.dms("U0BOB00001")
    assert "You have NOT been granted access" in dm.all_text()
    card = slack.find(event_type=None, channel="C0APPROVE1")[0]
    assert "grant failed" in card.all_text()
