"""Reminders and escalation through the app (issue 17): the sweep handler under
chalice.test.Client, the worker Lambda invoked again with the same jobs (a redelivery),
moto and the Slack stand-in. Each reminder and the escalation reach each person once, and
an approver decides from the reminder DM with a signed click.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import time_machine

from chalicelib.domain.model import GrantStatus, RequestStatus
from tests.conftest import CATALOG

T0 = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)
ALICE, BOB, CAROL, DAVE = "U0ALICE001", "U0BOB00001", "U0CAROL001", "U0DAVE0001"


@pytest.fixture
def catalog_path(tmp_path: Path) -> Path:
    """The sample catalog, with dave as prod/admin's fallback approver."""
    text = CATALOG.read_text()
    admin = 'approvers = ["bob", "carol"]\napprovals_required = 2'
    assert admin in text
    path = tmp_path / "access.toml"
    path.write_text(text.replace(admin, admin + '\nfallback_approvers = ["dave"]', 1))
    return path


def dms(slack, user: str, event_type: str) -> list:
    return [m for m in slack.dms(user) if m.event_type == event_type]


def worker(app_client, jobs: list) -> dict:
    return app_client.client.lambda_.invoke("worker", {"jobs": jobs, "correlation_id": "test"}).payload


def test_reminders_and_the_escalation_are_sent_once_each_and_an_approver_decides_from_the_dm(
        app_client, slack, store):
    with time_machine.travel(T0, tick=False) as clock:
        rid = re.search(r"req-\d{8}-[0-9a-f]{6}",
                        app_client.command("alice", "prod admin 2h fixing incident 4521").text).group(0)
        clock.shift(timedelta(minutes=10, seconds=5))  # remind_after (default 10m)
        app_client.sweep()
        app_client.sweep()  # the schedule fires again within the minute: nothing more
        # and the worker is handed the reminder job again (an async retry)
        redelivered = worker(app_client, [{"job": "remind_approvers", "request_id": rid, "reminder": 1}])
        assert redelivered["failed"] == []
        for approver in (BOB, CAROL):
            (reminder,) = dms(slack, approver, "approval_reminder")
            assert reminder.event_payload["reminder"] == 1
        (told,) = dms(slack, ALICE, "approvers_reminded")
        assert "I reminded <@U0BOB00001>, <@U0CAROL001>" in told.text

        # bob approves from his reminder DM (a signed click); alice hears of it
        assert app_client.approve("bob", rid).status == 200
        assert store.get(rid).approvers == ("bob",)
        (approved,) = dms(slack, ALICE, "access_approved")
        assert approved.event_payload["approver"] == "bob" and "(1 of 2 approvals)" in approved.text

        clock.shift(timedelta(minutes=20))  # 30 minutes: escalate_after (default 30m)
        app_client.sweep()
        app_client.sweep()
        worker(app_client, [{"job": "escalated", "request_id": rid}])
        (raised,) = [m for m in slack.messages("C0APPROVE1") if m.event_type == "approval_escalated"]
        assert raised.event_payload["escalated_request"] == rid and "dave" in raised.event_payload["deciders"]
        assert len(dms(slack, ALICE, "approval_escalated")) == 1
        # the second reminder (due at 30m too) waits for the sweep after the escalation's, and
        # goes only to who has not acted: bob approved, so carol alone
        assert [m.event_payload["reminder"] for m in dms(slack, CAROL, "approval_reminder")] == [1, 2]
        assert [m.event_payload["reminder"] for m in dms(slack, BOB, "approval_reminder")] == [1]

        # dave, the fallback approver, may now make it the second approval
        assert app_client.approve("dave", rid).status == 200
        req = store.get(rid)
        assert (req.status, req.grant_status, req.approvers) == (RequestStatus.APPROVED, GrantStatus.ACTIVE,
                                                                 ("bob", "dave"))
        clock.shift(timedelta(hours=1))
        app_client.sweep()  # decided: no more reminders
        assert len(dms(slack, CAROL, "approval_reminder")) == 2
        assert [m.event_type for m in slack.dms(ALICE)] == [
            "approvers_reminded", "access_approved", "approval_escalated", "approvers_reminded", "access_granted"]
