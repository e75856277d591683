"""The sweep reconciles IAM with the table and never touches what Drawbridge did not create."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest
import time_machine

from chalicelib.domain.model import GrantStatus
from local.seed import client as aws
from tests.conftest import TABLE

T0 = datetime(2026, 11, 12, 14, 0, tzinfo=timezone.utc)
DOC = json.dumps({"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]})


@pytest.fixture
def iam(stack):
    return aws("iam", keys=stack.service)


def attached(iam, user):
    return sorted(p["PolicyName"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"])


def grant_for_alice(app_client) -> str:
    rid = re.search(r"req-\d{8}-[0-9a-f]{6}", app_client.command("alice", "prod admin 2h incident").text).group(0)
    app_client.approve("bob", rid)
    app_client.approve("carol", rid)
    return rid


def drift_notices(slack):
    return [m for m in slack.messages("C0SECURIT1") if m.event_type in ("grant_drift", "grant_failed")]


def test_policy_without_a_live_grant_is_removed_and_reported(app_client, slack, iam, store):
    foreign = iam.create_policy(PolicyName="team-readonly", PolicyDocument=DOC)["Policy"]["Arn"]
    lookalike = iam.create_policy(PolicyName="other-thing", Path="/drawbridge/", PolicyDocument=DOC)["Policy"]["Arn"]
    restored = iam.create_policy(PolicyName="drawbridge-req-20261101-aaaaaa", Path="/drawbridge/",
                                 PolicyDocument=DOC)["Policy"]["Arn"]
    for arn in (foreign, lookalike, restored):
        iam.attach_user_policy(UserName="dave", PolicyArn=arn)
    iam.put_user_policy(UserName="dave", PolicyName="drawbridge-inline", PolicyDocument=DOC)

    with time_machine.travel(T0, tick=False):
        report = app_client.sweep().payload

    assert report["drift"] == 1
    assert attached(iam, "dave") == ["other-thing", "team-readonly"]  # not ours: untouched
    assert iam.list_user_policies(UserName="dave")["PolicyNames"] == ["drawbridge-inline"]
    assert [p["PolicyName"] for p in iam.list_policies(Scope="Local", PathPrefix="/drawbridge/")["Policies"]] == ["other-thing"]
    (notice,) = drift_notices(slack)
    assert notice.event_type == "grant_drift" and "drawbridge-req-20261101-aaaaaa" in notice.text
    assert notice.metadata["event_payload"]["state"] == "no record"


def test_grant_copied_to_another_user_is_taken_back(app_client, slack, iam, store):
    with time_machine.travel(T0, tick=False):
        rid = grant_for_alice(app_client)
        iam.attach_user_policy(UserName="dave", PolicyArn=store.get(rid).policy_arn)
        app_client.sweep()
    assert attached(iam, "dave") == []
    assert attached(iam, "alice") == [f"drawbridge-{rid}"]
    assert store.get(rid).grant_status is GrantStatus.ACTIVE
    (notice,) = drift_notices(slack)
    assert "also attached to dave; detached from them" in notice.text


def test_active_grant_whose_policy_vanished_is_marked_failed(app_client, slack, iam, store):
    with time_machine.travel(T0, tick=False) as clock:
        rid = grant_for_alice(app_client)
        iam.detach_user_policy(UserName="alice", PolicyArn=store.get(rid).policy_arn)
        clock.shift(timedelta(minutes=6))  # past IAM_SETTLE: a fresh grant may not be listed yet
        app_client.sweep()
    req = store.get(rid)
    assert req.grant_status is GrantStatus.FAILED and "vanished" in req.note
    assert [p["PolicyName"] for p in iam.list_policies(Scope="Local", PathPrefix="/drawbridge/")["Policies"]] == []
    (notice,) = drift_notices(slack)
    assert notice.event_type == "grant_failed" and rid in notice.text


def test_consistent_state_reports_nothing(app_client, slack, store):
    with time_machine.travel(T0, tick=False):
        grant_for_alice(app_client)
        assert app_client.sweep().payload["drift"] == 0
    assert drift_notices(slack) == []


def test_grant_moved_to_another_single_user_is_found_by_the_rotation(app_client, slack, iam, store, stack):
    """Its attachment count still reads 1: the sweep's rotation asks who holds it (the only
    live grant is in every run's slice) and remembers in the table where it got to."""
    with time_machine.travel(T0, tick=False) as clock:
        rid = grant_for_alice(app_client)
        arn = store.get(rid).policy_arn
        iam.detach_user_policy(UserName="alice", PolicyArn=arn)
        iam.attach_user_policy(UserName="dave", PolicyArn=arn)
        clock.shift(timedelta(minutes=6))
        report = app_client.sweep().payload
    assert (report["drift"], report["verified"], report["verify_period"]) == (2, 1, 1)
    assert attached(iam, "dave") == [] and attached(iam, "alice") == []
    assert store.get(rid).grant_status is GrantStatus.FAILED
    assert [m.event_type for m in drift_notices(slack)] == ["grant_drift", "grant_failed"]
    cursor = aws("dynamodb", keys=stack.service).get_item(
        TableName=TABLE, Key={"PK": {"S": "SWEEP"}, "SK": {"S": "VERIFY_CURSOR"}})["Item"]
    assert cursor["cursor"]["S"].endswith(f"#{rid}")  # its place in the rotation (a hash of the id, the id)


class _CurrentStdout:
    """Writes to whatever sys.stdout is right now (this test's capture)."""

    def write(self, text: str) -> int:
        import sys

        return sys.stdout.write(text)

    def flush(self) -> None:
        import sys

        sys.stdout.flush()


@pytest.mark.parametrize("period, warned", [(44, False), (60, False), (61, True)])
def test_the_sweep_warns_when_a_pass_of_the_rotation_takes_longer_than_an_hour(
        app_client, monkeypatch, capsys, period, warned):
    """More live grants than VERIFY_CAP x 60: the check period stretches past the hour, and
    the sweep's log says so (a warning, with how long a pass now takes)."""
    import logging

    from chalicelib.log import logger
    from chalicelib.service import Drawbridge
    from chalicelib.usecases.sweep import SweepReport

    for handler in logger()._logger.handlers:
        if type(handler) is logging.StreamHandler:
            monkeypatch.setattr(handler, "stream", _CurrentStdout())
    monkeypatch.setattr(Drawbridge, "sweep", lambda self, on_error=None: SweepReport(verified=30,
                                                                                   verify_period=period))
    with time_machine.travel(T0, tick=False):
        assert app_client.sweep().payload["verify_period"] == period
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    warnings = [ln for ln in lines if ln["level"] == "WARNING"]
    assert [(w["verify_period"], w["verified_per_run"]) for w in warnings] == ([(period, 30)] if warned else [])
