"""Approvers named as Slack user groups at the service layer (fakes): the grant step
re-resolves the groups (defence in depth) and the card names the group's people."""

from __future__ import annotations

from chalicelib.domain.model import GrantStatus, RequestStatus
from tests.fakes import SAMPLE_CATALOG, FakeUserGroups, make_service
from tests.service.helpers import approve, ask, card

BOB, CAROL, DAVE = "U0BOB00001", "U0CAROL001", "U0DAVE0001"


def service(groups: FakeUserGroups):
    text = SAMPLE_CATALOG.read_text()
    old = 'approvers = ["bob", "carol"]       # bob\'s own request needs carol, and carol\'s needs bob'
    assert old in text
    return make_service(text.replace(old, 'approvers = ["@sre-leads"]'), groups=groups)


def test_an_approver_who_left_the_group_before_the_grant_does_not_count():
    groups = FakeUserGroups({"sre-leads": {CAROL}})
    svc = service(groups)
    rid = ask(svc, text="prod readonly 1h dashboards")
    follow = approve(svc, "carol", rid, run=False)  # the final click: approved, the grant job owed
    assert svc.store.get(rid).status is RequestStatus.APPROVED
    groups.groups["sre-leads"] = {DAVE}  # carol leaves the group before the worker grants
    svc.run_all(follow)
    req = svc.store.get(rid)
    assert req.grant_status is GrantStatus.FAILED and "0 of 1 approvals count" in req.note
    assert svc.grants.attached("alice") == []  # IAM was never asked


def test_the_grant_is_made_while_the_approver_is_still_in_the_group():
    groups = FakeUserGroups({"sre-leads": {CAROL}})
    svc = service(groups)
    rid = ask(svc, text="prod readonly 1h dashboards")
    approve(svc, "carol", rid)
    assert svc.store.get(rid).grant_status is GrantStatus.ACTIVE


def test_the_card_names_the_groups_people():
    svc = service(FakeUserGroups({"sre-leads": {CAROL, DAVE}}))
    rid = ask(svc, text="prod readonly 1h dashboards")
    text = card(svc, rid).all_text()
    assert f"<@{CAROL}>" in text and f"<@{DAVE}>" in text and f"<@{BOB}>" not in text


def test_a_group_slack_cannot_resolve_at_grant_time_is_retried_not_failed():
    """Slack failing (or slow) when the worker re-checks is not a "no": the attempt is
    counted and the grant stays GRANTING; the next try, once Slack answers, makes it."""
    import pytest

    from chalicelib.usecases import jobs
    from chalicelib.usecases.grant import GroupsUnresolved

    groups = FakeUserGroups({"sre-leads": {CAROL}})
    svc = service(groups)
    rid = ask(svc, text="prod readonly 1h dashboards")
    approve(svc, "carol", rid, run=False)
    del groups.groups["sre-leads"]  # Slack does not answer
    with pytest.raises(GroupsUnresolved):
        svc.run_all([jobs.Grant(rid)])
    req = svc.store.get(rid)
    assert (req.grant_status, req.grant_attempts) == (GrantStatus.GRANTING, 1)
    assert "Slack did not say who is in @sre-leads" in req.note and svc.grants.attached("alice") == []
    groups.groups["sre-leads"] = {CAROL}  # Slack answers again
    svc.run_all([jobs.Grant(rid)])
    assert svc.store.get(rid).grant_status is GrantStatus.ACTIVE and len(svc.grants.attached("alice")) == 1
