"""Use case: the review of a break-glass grant (chalicelib/usecases/review.py): approvers
acknowledge or flag it on the card; until they do, the sweep reminds them at 1h, 2h, 4h...
after the use, each reminder once; past ``review_within`` #security is told, once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.timing import due_at
from chalicelib.slack.parse import Click
from chalicelib.slack.views import ACK_BREAK_GLASS, FLAG_BREAK_GLASS
from chalicelib.usecases import jobs
from tests.fakes import T0
from tests.service.helpers import APPROVALS, actions, card, ephemeral_texts, security, slack_id
from tests.service.test_breakglass import REASON, bg, break_glass  # noqa: F401 (bg is a fixture)


def ack(svc, person: str, rid: str, run: bool = True, delivery: str | None = None):
    click = Click(ACK_BREAK_GLASS, rid, slack_id(svc, person), APPROVALS, "1794492000.000001", delivery or "")
    follow = svc.click(click, delivery=delivery)
    if run:
        svc.run_all(follow)
    return follow


def flag(svc, person: str, rid: str, why: str, run: bool = True, block: str | None = None):
    """Typing ``why`` in the card's flag box and pressing Enter (block_actions of the input)."""
    click = Click(FLAG_BREAK_GLASS, why, slack_id(svc, person), APPROVALS, "1794492000.000001", "",
                  block_id=block or f"flag:{rid}")
    follow = svc.click(click)
    if run:
        svc.run_all(follow)
    return follow


def review_controls(msg) -> list[str]:
    """The action ids of the card's review controls (button and text input)."""
    out = []
    for block in msg.blocks or []:
        if block["type"] == "actions":
            out += [e["action_id"] for e in block["elements"]]
        if block["type"] == "input":
            out.append(block["element"]["action_id"])
            assert block["dispatch_action"] is True and block["block_id"].startswith("flag:")
    return out


def reminders(svc, person: str) -> list:
    return [m for m in svc.slack.dms(slack_id(svc, person)) if m.event_type == "break_glass_review_reminder"]


# ---------------------------------------------------------------- acknowledge and flag

def test_the_card_offers_review_controls_while_the_review_is_open(bg):
    rid = break_glass(bg)
    assert review_controls(card(bg, rid)) == [ACK_BREAK_GLASS, FLAG_BREAK_GLASS]


def test_an_approver_acknowledges_and_the_card_says_who_and_when(bg):
    rid = break_glass(bg)
    bg.clock.advance(minutes=20)

    ack(bg, "bob", rid)

    req = bg.store.get(rid)
    assert (req.reviewed_by, req.reviewed_at, req.review_outcome) == ("bob", T0 + timedelta(minutes=20),
                                                                      "acknowledged")
    assert actions(bg, rid)[-1] == ("bob", "review_acknowledged", "APPROVED/ACTIVE", "APPROVED/ACTIVE")
    msg = card(bg, rid)
    assert review_controls(msg) == []
    assert "Review: acknowledged by <@U0BOB00001> at 14:20 UTC" in msg.all_text()
    assert [m.event_type for m in security(bg) if not m.event_type.startswith("alert_path_")] == ["break_glass_used"]  # an ack is not news for #security
    assert due_at(req) == req.expires_at  # nothing more to remind


@pytest.mark.parametrize("person, why", [
    ("alice", "You cannot review your own break-glass use"),
    ("dave", "You are not an approver of prod/admin"),
])
def test_only_an_approver_other_than_the_requester_may_review(bg, person, why):
    rid = break_glass(bg)
    ack(bg, person, rid)
    flag(bg, person, rid, "this looks wrong to me")
    texts = [t for t in ephemeral_texts(bg, person) if "Break-glass `" not in t]  # (alice's own Confirm answer)
    assert len(texts) == 2 and all(why in t for t in texts), texts
    assert bg.store.get(rid).review_open and review_controls(card(bg, rid))


def test_a_flag_needs_a_reason(bg):
    rid = break_glass(bg)
    flag(bg, "carol", rid, "   ")
    assert "Say why you flag it" in ephemeral_texts(bg, "carol")[-1]
    assert bg.store.get(rid).review_open


def test_a_flag_records_who_and_why_and_tells_security(bg):
    rid = break_glass(bg)
    bg.clock.advance(minutes=30)

    flag(bg, "carol", rid, "no incident was open <!channel>")

    req = bg.store.get(rid)
    assert (req.reviewed_by, req.review_outcome, req.review_note) == ("carol", "flagged",
                                                                       "no incident was open <!channel>")
    assert actions(bg, rid)[-1] == ("carol", "review_flagged", "APPROVED/ACTIVE", "APPROVED/ACTIVE")
    assert bg.store.history(rid)[-1].reason == "no incident was open <!channel>"
    msg = card(bg, rid)
    assert review_controls(msg) == []
    assert "*flagged* by <@U0CAROL001> at 14:30 UTC: no incident was open &lt;!channel&gt;" in msg.all_text()
    notice = security(bg)[-1]
    assert notice.event_type == "break_glass_flagged"
    assert notice.payload == {"request_id": rid, "requester": "alice", "account": "prod", "role": "admin",
                              "flagged_by": "carol", "note": "no incident was open <!channel>"}
    assert "*flagged* by @carol" in notice.text and "<!channel>" not in notice.text


def test_a_second_review_is_refused_with_the_first(bg):
    rid = break_glass(bg)
    ack(bg, "bob", rid)
    flag(bg, "carol", rid, "too late, but still")
    assert f"{rid} was already acknowledged by @bob" in ephemeral_texts(bg, "carol")[-1]
    assert bg.store.get(rid).review_outcome == "acknowledged"


def test_concurrent_reviews_end_as_one(bg):
    """Carol's flag lands while bob's ack is deciding: bob's write loses, he reads again and
    is refused; one review, one audit event."""
    rid = break_glass(bg)
    bg.store.before_next("transition", lambda: flag(bg, "carol", rid, "I did not expect this"))
    ack(bg, "bob", rid)
    req = bg.store.get(rid)
    assert (req.review_outcome, req.reviewed_by) == ("flagged", "carol")
    assert [a for _, a, _, _ in actions(bg, rid)].count("review_flagged") == 1
    assert "review_acknowledged" not in [a for _, a, _, _ in actions(bg, rid)]
    assert f"{rid} was already flagged by @carol" in ephemeral_texts(bg, "bob")[-1]


def test_a_redelivered_ack_acts_once(bg):
    rid = break_glass(bg)
    ack(bg, "bob", rid, delivery="t-ack")
    from chalicelib.usecases.deliveries import Repeated

    with pytest.raises(Repeated):
        ack(bg, "bob", rid, delivery="t-ack")
    assert [a for _, a, _, _ in actions(bg, rid)].count("review_acknowledged") == 1


def test_an_ordinary_grant_has_nothing_to_review(bg):
    from tests.service.helpers import granted

    rid = granted(bg)
    ack(bg, "bob", rid)
    assert "is not a break-glass grant" in ephemeral_texts(bg, "bob")[-1]
    assert review_controls(card(bg, rid)) == []


def test_a_flag_box_without_a_request_id_changes_nothing(bg):
    rid = break_glass(bg)
    flag(bg, "carol", rid, "suspicious", block="flag:nonsense")
    assert "does not carry a valid request id" in ephemeral_texts(bg, "carol")[-1]
    assert bg.store.get(rid).review_open


def test_the_review_stays_open_after_the_grant_ended(bg):
    rid = break_glass(bg)
    bg.clock.advance(hours=1, minutes=1)
    bg.sweep()
    assert bg.store.get(rid).grant_status.value == "EXPIRED"
    assert review_controls(card(bg, rid)) == [ACK_BREAK_GLASS, FLAG_BREAK_GLASS]
    ack(bg, "carol", rid)
    assert bg.store.get(rid).review_outcome == "acknowledged" and review_controls(card(bg, rid)) == []


# ---------------------------------------------------------------- reminders and escalation

def test_reminders_follow_at_1h_2h_and_each_is_sent_once(bg):
    """review_within is 4h: reminders at 1h and 2h after the use (4h is the escalation)."""
    rid = break_glass(bg)
    bg.clock.advance(minutes=59)
    bg.sweep()
    assert reminders(bg, "bob") == []

    bg.clock.advance(minutes=1)  # 1h after the use
    bg.sweep()
    bg.sweep()  # twice: still one reminder
    assert [m.payload for m in reminders(bg, "bob")] == [{"request_id": rid, "step": 1, "approver": "bob"}]
    assert [m.payload["step"] for m in reminders(bg, "carol")] == [1]
    assert reminders(bg, "alice") == []  # never asked to review their own use
    (dm,) = reminders(bg, "bob")
    assert f"Please review break-glass `{rid}`" in dm.text and "<#C0APPROVE1>" in dm.text
    assert bg.store.get(rid).review_reminders == 1
    assert actions(bg, rid)[-1][:2] == ("drawbridge", "review_reminded")

    bg.clock.advance(minutes=59)
    bg.sweep()
    assert len(reminders(bg, "bob")) == 1
    bg.clock.advance(minutes=1)  # 2h
    bg.sweep()
    bg.sweep()
    assert [m.payload["step"] for m in reminders(bg, "bob")] == [1, 2]
    assert [m.payload["step"] for m in reminders(bg, "carol")] == [1, 2]
    assert bg.store.get(rid).review_reminders == 2


def test_no_reminders_after_the_review(bg):
    rid = break_glass(bg)
    ack(bg, "bob", rid)
    for _ in range(6):
        bg.clock.advance(hours=1)
        bg.sweep()
    assert reminders(bg, "bob") == [] and reminders(bg, "carol") == []
    assert [m.event_type for m in security(bg) if not m.event_type.startswith("alert_path_")] == ["break_glass_used"]
    assert bg.store.get(rid).review_escalated_at is None


def test_a_reminder_owed_before_the_review_is_not_sent_after_it(bg):
    """The sweep records reminder 1, its DM job is lost; bob acknowledges; the retry of the
    owed reminder sends nothing."""
    rid = break_glass(bg)
    bg.clock.advance(hours=1)
    from chalicelib.usecases.review import review_step

    follow = review_step(bg, rid, bg.clock())
    assert follow == [jobs.ReviewReminder(rid, 1)]
    ack(bg, "bob", rid)
    bg.clock.advance(minutes=2)
    bg.sweep()  # delivers what is still owed
    assert reminders(bg, "bob") == [] and reminders(bg, "carol") == []
    assert bg.store.owed_for("alice") == []


def test_unreviewed_past_review_within_goes_to_security_once(bg):
    rid = break_glass(bg)
    for _ in range(4):
        bg.clock.advance(hours=1)
        bg.sweep()
    bg.sweep()

    req = bg.store.get(rid)
    assert req.review_escalated_at == T0 + timedelta(hours=4) and req.review_open
    overdue = [m for m in security(bg) if m.event_type == "break_glass_review_overdue"]
    assert len(overdue) == 1
    assert overdue[0].payload == {"request_id": rid, "requester": "alice", "account": "prod", "role": "admin",
                                  "review_due_at": "2026-11-12T18:00:00Z", "reminders": 2}
    assert overdue[0].text.startswith("<!here> :rotating_light: Break-glass") and REASON in overdue[0].text
    assert "Overdue: #security was told at 18:00 UTC" in card(bg, rid).all_text()
    assert actions(bg, rid)[-1][:2] == ("drawbridge", "review_escalated")

    for _ in range(8):  # reminders stop, and the escalation is never repeated
        bg.clock.advance(hours=2)
        bg.sweep()
    assert len([m for m in security(bg) if m.event_type == "break_glass_review_overdue"]) == 1
    assert [m.payload["step"] for m in reminders(bg, "bob")] == [1, 2]
    assert due_at(bg.store.get(rid)) is None

    ack(bg, "bob", rid)  # still reviewable after the escalation
    assert bg.store.get(rid).review_outcome == "acknowledged"


def test_a_sweep_that_was_down_sends_one_reminder_then_escalates(bg):
    """Nothing swept for 3h: the next run sends one reminder (step 2, the latest due), not
    two; the escalation still comes at 4h."""
    rid = break_glass(bg)
    bg.clock.advance(hours=3)
    bg.sweep()
    assert [m.payload["step"] for m in reminders(bg, "bob")] == [2]
    bg.clock.advance(hours=1)
    bg.sweep()
    assert [m.event_type for m in security(bg) if not m.event_type.startswith("alert_path_")][-1] == "break_glass_review_overdue"
    assert bg.store.get(rid).review_reminders == 2


def test_the_due_index_follows_the_review(bg):
    rid = break_glass(bg)
    req = bg.store.get(rid)
    assert due_at(req) == T0 + timedelta(hours=1)  # expiry at 1h, first reminder at 1h
    bg.clock.advance(hours=1)
    bg.sweep()
    req = bg.store.get(rid)
    assert req.grant_status.value == "EXPIRED" and due_at(req) == T0 + timedelta(hours=2)
    assert rid in [r.request_id for r in bg.store.due(T0 + timedelta(hours=2))]


def test_an_approver_who_broke_glass_is_neither_reminded_nor_allowed_to_review_it():
    """bob approves dev/admin (self_approval on) and may break glass on it: his own use is
    for carol to review, and only carol is reminded."""
    from tests.fakes import make_service
    from tests.service.test_breakglass import BG_CATALOG

    svc = make_service(catalog=BG_CATALOG.replace('self_approval = true ', 'break_glass = ["bob"]\nself_approval = true '))
    rid = break_glass(svc, "bob", f"breakglass dev admin 30m {REASON}")
    bob, carol = slack_id(svc, "bob"), slack_id(svc, "carol")
    assert "<@U0CAROL001>" in card(svc, rid).all_text()

    ack(svc, "bob", rid)
    assert "You cannot review your own break-glass use" in ephemeral_texts(svc, "bob")[-1]
    svc.clock.advance(hours=1)
    svc.sweep()
    assert [m.payload["approver"] for m in svc.slack.dms(carol) if m.event_type == "break_glass_review_reminder"] \
        == ["carol"]
    assert [m for m in svc.slack.dms(bob) if m.event_type == "break_glass_review_reminder"] == []
    assert svc.store.get(rid).review_due_at == svc.store.get(rid).decided_at + timedelta(hours=24)


def test_an_ack_while_the_grant_is_being_made_waits_and_the_grant_lands(bg):
    """A review click during GRANTING (a job between IAM and the record) is refused for a
    moment, so the grant job's write never loses to it: the grant and its DM land at once."""
    from tests.service.test_breakglass import confirm, confirm_value, preview

    follow = confirm(bg, confirm_value(preview(bg)), run=False)
    rid = next(j.request_id for j in follow if isinstance(j, jobs.Grant))
    bg.grants.before_next("grant", lambda: ack(bg, "bob", rid))
    bg.run_all(follow)

    req = bg.store.get(rid)
    assert req.grant_status.value == "ACTIVE" and req.reviewed_at is None
    assert "being granted right now; review it in a moment" in ephemeral_texts(bg, "bob")[-1]
    assert [m.event_type for m in bg.slack.dms(slack_id(bg, "alice"))][-1] == "access_granted"
    ack(bg, "bob", rid)
    assert bg.store.get(rid).review_outcome == "acknowledged"


def test_a_break_glass_grant_iam_refused_has_nothing_to_review(bg):
    from tests.service.test_breakglass import confirm, confirm_value, preview

    bg.grants.max_attached = 0  # IAM's quota reached: the grant fails before it is ever made
    follow = confirm(bg, confirm_value(preview(bg)))
    rid = next(j.request_id for j in follow if isinstance(j, jobs.Grant))
    req = bg.store.get(rid)
    assert req.grant_status.value == "FAILED" and not req.review_open and due_at(req) is None
    bg.clock.advance(hours=30)
    bg.sweep()
    assert reminders(bg, "bob") == [] and not [m for m in security(bg)
                                               if m.event_type == "break_glass_review_overdue"]
