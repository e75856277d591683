"""Use case: the App Home (chalicelib/usecases/home.py, the PublishHome job) and clicks made
in it (service.click with a view container): issue 17's first slice, on the fakes."""

from __future__ import annotations

from chalicelib.domain.model import GrantStatus, RequestStatus
from chalicelib.slack.parse import Click
from chalicelib.slack.views import APPROVE, APPROVE_EXTENSION, DENY, DENY_EXTENSION, DENY_WITH_REASON, REVOKE
from chalicelib.usecases import jobs
from tests.service.helpers import approve, ask, granted, slack_id, slash, state


def texts(view: dict) -> str:
    """Every text in the view, raw (as sent to Slack)."""
    out: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            if isinstance(obj.get("text"), str):
                out.append(obj["text"])
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)
    walk(view.get("blocks"))
    return "\n".join(out)


def buttons(view: dict) -> list[tuple[str, str, str]]:
    """(action id, value, block id) of every button in the view, in order."""
    found = []
    for block in view["blocks"]:
        elements = block.get("elements", []) if block["type"] == "actions" else [block.get("accessory") or {}]
        found += [(e["action_id"], e["value"], block.get("block_id", "")) for e in elements
                  if e.get("type") == "button"]
    return found


def home(svc, person: str) -> dict:
    svc.run_all([jobs.PublishHome(slack_id(svc, person))])
    return svc.slack.homes[slack_id(svc, person)]


def home_click(svc, person: str, action: str, rid: str, delivery: str = "", extension: int = 0):
    """A button clicked in ``person``'s App Home: no channel, a view container."""
    click = Click(action, rid, slack_id(svc, person), "", "", delivery, extension=extension, container="view")
    return svc.click(click, delivery=delivery or None)


def test_a_requester_sees_their_grant_with_revoke_and_their_pending_request(svc):
    active = granted(svc)
    pending = ask(svc, "dave", "prod admin 1h trying a migration")
    approve(svc, "bob", pending)
    svc.run_all([jobs.PublishHome(slack_id(svc, "dave"))])
    dave = svc.slack.homes[slack_id(svc, "dave")]
    assert f"`prod/admin` ({pending}) for 1h: approvals 1 of 2 (<@U0BOB00001>)" in texts(dave)
    assert "You have no active grants" in texts(dave) and buttons(dave) == []

    view = home(svc, "alice")

    assert view["type"] == "home"
    text = texts(view)
    assert f"`prod/admin` ({active}) until *16:02 UTC*" in text
    assert "You have no pending requests" in text
    assert buttons(view) == [(REVOKE, active, f"grant:{active}")]  # alice approves nothing: no section
    assert "Waiting for your approval" not in text


def test_empty_states_say_so(svc):
    text = texts(home(svc, "bob"))
    assert "You have no active grants" in text
    assert "You have no pending requests" in text
    assert "Nothing is waiting for your approval" in text  # bob approves prod and dev roles


def test_an_approver_sees_requests_and_extensions_waiting_with_the_cards_buttons(svc):
    active = granted(svc)
    svc.clock.advance(minutes=30)
    svc.run_all(slash(svc, "alice", f"extend {active} 1h still on <!here> incident").jobs)
    waiting = ask(svc, "dave", "prod admin 1h R&D <script> <!channel>")

    view = home(svc, "carol")

    assert buttons(view) == [
        (APPROVE_EXTENSION, active, f"extend:{active}:1"), (DENY_EXTENSION, active, f"extend:{active}:1"),
        (APPROVE, waiting, f"decide:{waiting}"), (DENY, waiting, f"decide:{waiting}"),
        (DENY_WITH_REASON, waiting, f"decide:{waiting}")]
    text = texts(view)
    assert f"asks to extend `prod/admin` ({active}) by 1h" in text
    assert "still on &lt;!here&gt; incident" in text
    assert "R&amp;D &lt;script&gt; &lt;!channel&gt;" in text  # escaped exactly once
    assert "<!channel>" not in text and "<!here>" not in text and "&amp;amp;" not in text


def test_a_stranger_gets_a_home_that_says_they_are_not_in_the_catalog(svc):
    svc.run_all([jobs.PublishHome("U0STRANGER")])
    assert "not in the Drawbridge catalog" in texts(svc.slack.homes["U0STRANGER"])


def test_revoke_from_the_home_revokes_and_publishes_the_home_again(svc):
    rid = granted(svc)
    svc.clock.advance(minutes=10)

    follow = home_click(svc, "alice", REVOKE, rid, delivery="1.2.home-revoke")

    assert follow[-1] == jobs.PublishHome(slack_id(svc, "alice"))
    assert not any(isinstance(j, jobs.Ephemeral) for j in follow)  # it counted: no refusal to send
    svc.run_all(follow)
    req = svc.store.get(rid)
    assert (req.grant_status, req.ended_by) == (GrantStatus.REVOKED, "alice")
    view = svc.slack.homes[slack_id(svc, "alice")]
    assert buttons(view) == [] and "You have no active grants" in texts(view)


def test_revoke_from_the_home_cancels_a_pending_request(svc):
    rid = ask(svc)
    svc.run_all(home_click(svc, "alice", REVOKE, rid))
    assert svc.store.get(rid).status is RequestStatus.CANCELLED


def test_a_refusal_from_the_home_is_a_dm_and_the_home_is_published_again(svc):
    rid = granted(svc)
    follow = home_click(svc, "dave", REVOKE, rid)  # dave is neither the requester nor an approver

    assert jobs.PublishHome(slack_id(svc, "dave")) in follow
    svc.run_all(follow)
    assert state(svc, rid) == "APPROVED/ACTIVE"
    (dm,) = svc.slack.dms(slack_id(svc, "dave"))
    assert dm.event_type == "click_answer" and dm.text.endswith(".")
    assert svc.slack.ephemerals() == []
    assert slack_id(svc, "dave") in svc.slack.homes


def test_a_stranger_clicking_revoke_in_the_home_is_refused_by_dm(svc):
    rid = granted(svc)
    svc.run_all(svc.click(Click(REVOKE, rid, "U0STRANGER", "", "", container="view")))
    assert state(svc, rid) == "APPROVED/ACTIVE"
    (dm,) = svc.slack.dms("U0STRANGER")
    assert "not in the Drawbridge catalog, so you cannot revoke access" in dm.text


def test_approve_from_the_home_counts_like_the_card_and_updates_both(svc):
    rid = ask(svc)
    follow = home_click(svc, "bob", APPROVE, rid, delivery="1.2.home-approve")
    svc.run_all(follow)

    req = svc.store.get(rid)
    assert req.approvers == ("bob",) and req.status is RequestStatus.PENDING
    assert buttons(svc.slack.homes[slack_id(svc, "bob")]) == []  # bob has approved: nothing left for him
    assert svc.slack.ephemerals() == []


def test_a_repeated_home_click_acts_once(svc):
    from chalicelib.usecases.deliveries import Repeated

    rid = ask(svc)
    svc.run_all(home_click(svc, "bob", APPROVE, rid, delivery="1.2.same"))
    try:
        home_click(svc, "bob", APPROVE, rid, delivery="1.2.same")
    except Repeated:
        pass
    else:
        raise AssertionError("a redelivered click acted again")
    assert svc.store.get(rid).approvers == ("bob",)


def test_a_card_click_does_not_publish_a_home(svc):
    rid = ask(svc)
    follow = svc.click(Click(APPROVE, rid, slack_id(svc, "bob"), "C0APPROVE1", "1.1"))
    assert not any(isinstance(j, jobs.PublishHome) for j in follow)
