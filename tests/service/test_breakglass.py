"""Use case: break-glass (chalicelib/usecases/breakglass.py): the command checks and asks
for a Confirm, changing nothing; the Confirm makes the grant at once, loudly; the grant step
accepts a break-glass record only with its audit event; alerts under it are loud."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.errors import RateLimited
from chalicelib.domain.model import GrantStatus, RequestStatus, event_for
from chalicelib.slack.parse import Click
from chalicelib.slack.views import CONFIRM_BREAK_GLASS
from chalicelib.usecases import jobs
from chalicelib.usecases.alert import AlertOutcome, handle
from tests.fakes import SAMPLE_CATALOG, T0, make_service
from tests.fixtures import load_cloudtrail
from tests.service.helpers import (APPROVALS, CMD_CHANNEL, SECURITY, actions, ask, card, dm_types, ephemeral_texts,
                                   granted, security, slack_id, slash, state)

#: the sample catalog with alice listed for break-glass on prod/admin (1h at most, reviewed within 4h)
BG_CATALOG = (SAMPLE_CATALOG.read_text()
              .replace('# break_glass = ["alice"]', 'break_glass = ["alice"]')
              .replace('# review_within = "4h"', 'review_within = "4h"'))
REASON = "database is down and nobody answers the pager"
PROD_ADMIN = "arn:aws:iam::222222222222:role/admin"


@pytest.fixture
def bg():
    """Drawbridge with the break-glass catalog, the clock at T0 (14:00 UTC)."""
    return make_service(catalog=BG_CATALOG)


def preview(svc, person: str = "alice", text: str = f"breakglass prod admin 1h {REASON}"):
    """The command's reply (must offer the Confirm button)."""
    reply = slash(svc, person, text)
    assert reply.blocks, reply.text
    return reply


def confirm_value(reply) -> str:
    (button,) = [e for b in reply.blocks if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == CONFIRM_BREAK_GLASS
    return button["value"]


def confirm(svc, value: str, person: str = "alice", message_ts: str = "1794492000.000100", run: bool = True,
            delivery: str | None = None):
    """The Confirm click on the ephemeral message ``message_ts``: the jobs that follow."""
    click = Click(CONFIRM_BREAK_GLASS, value, slack_id(svc, person), CMD_CHANNEL, message_ts, delivery or "")
    follow = svc.click(click, delivery=delivery)
    if run:
        svc.run_all(follow)
    return follow


def break_glass(svc, person: str = "alice", text: str = f"breakglass prod admin 1h {REASON}") -> str:
    """Command, then Confirm: the break-glass request id (granted)."""
    follow = confirm(svc, confirm_value(preview(svc, person, text)), person)
    return next(j.request_id for j in follow if isinstance(j, jobs.Grant))


def nothing_happened(svc) -> None:
    assert svc.store.open_for("alice") == [] and svc.store.open_for("dave") == []
    assert svc.grants.policies == {}
    assert svc.slack.posts() == []


# ---------------------------------------------------------------- refused before anything happens

@pytest.mark.parametrize("text, why", [
    ("breakglass prod admin 1h", "needs a reason of at least a sentence"),
    ("breakglass prod admin 1h urgent", "needs a reason of at least a sentence"),
    ("breakglass prod admin 1h db is down", "needs a reason of at least a sentence"),  # 3 words, 15 characters
    ("breakglass prod admin", "needs an account, a role, a duration and a reason"),
])
def test_break_glass_is_refused_without_a_reason_of_a_sentence(bg, text, why):
    reply = slash(bg, "alice", text)
    assert why in reply.text.lower() or why in reply.text
    assert reply.blocks is None and reply.jobs == []
    nothing_happened(bg)


@pytest.mark.parametrize("person, text, why", [
    ("dave", f"breakglass prod admin 1h {REASON}", "you may not use break-glass on `prod/admin`"),
    ("alice", f"breakglass prod readonly 1h {REASON}", "you may not use break-glass on `prod/readonly`"),
    ("alice", f"breakglass prod admin 2h {REASON}", "break-glass on prod/admin allows at most 1h"),
    ("alice", f"breakglass prod nosuch 1h {REASON}", "unknown role 'nosuch' in prod"),
    ("alice", f"breakglass staging admin 1h {REASON}", "unknown account 'staging'"),
    ("alice", f"breakglass prod admin soon {REASON}", "is not a duration"),
])
def test_break_glass_is_refused_for_whom_and_what_the_catalog_does_not_allow(bg, person, text, why):
    reply = slash(bg, person, text)
    assert why in reply.text, reply.text
    assert reply.blocks is None and reply.jobs == []
    nothing_happened(bg)


def test_break_glass_is_refused_where_the_catalog_lists_nobody(svc):
    """The sample catalog lists alice for prod/admin only: prod/readonly has nobody."""
    reply = slash(svc, "alice", f"breakglass prod readonly 1h {REASON}")
    assert "you may not use break-glass on `prod/readonly`" in reply.text
    nothing_happened(svc)


def test_break_glass_obeys_the_per_person_limit(bg):
    bg.max_open_per_user = 1
    ask(bg, "alice", "prod readonly 1h looking at dashboards")
    reply = slash(bg, "alice", f"breakglass prod admin 1h {REASON}")
    assert "you already have 1 pending or active requests" in reply.text and reply.blocks is None


def test_break_glass_is_refused_while_the_person_holds_the_role(bg):
    rid = ask(bg, "alice")  # a pending request for prod/admin
    reply = slash(bg, "alice", f"breakglass prod admin 1h {REASON}")
    assert f"you already have `{rid}` for `prod/admin` (pending)" in reply.text and reply.blocks is None


# ---------------------------------------------------------------- the confirmation step

def test_the_command_asks_for_a_confirm_and_changes_nothing(bg):
    reply = preview(bg)

    nothing_happened(bg)
    assert reply.jobs == []
    assert "nothing has happened yet" in reply.text
    shown = json.dumps(reply.blocks)
    assert "`prod/admin`" in shown and "15:00 UTC" in shown and "without approvals" in shown
    assert "`@here`" in shown and "<#C0APPROVE1>" in shown and "<#C0SECURIT1>" in shown
    assert "@bob, @carol" in shown and "within 4h" in shown and "<!here>" not in shown
    value = json.loads(confirm_value(reply))
    assert {k: value[k] for k in ("a", "r", "d", "why", "u", "t")} == {
        "a": "prod", "r": "admin", "d": "1h", "why": REASON, "u": "U0ALICE001", "t": "2026-11-12T14:00:00Z"}
    assert len(value["n"]) == 32 and value["n"] != json.loads(confirm_value(preview(bg)))["n"]  # one-time


def test_the_confirm_makes_the_grant_at_once_without_approvals(bg):
    value = confirm_value(preview(bg))
    bg.clock.advance(minutes=1)
    at = bg.clock()

    follow = confirm(bg, value, run=False)

    (rid,) = [j.request_id for j in follow if isinstance(j, jobs.Grant)]
    req = bg.store.get(rid)
    assert (req.status, req.grant_status, req.break_glass) == (RequestStatus.APPROVED, GrantStatus.GRANTING, True)
    assert (req.decided_by, req.decided_at, req.expires_at) == ("alice", at, at + timedelta(hours=1))
    assert (req.approvals, req.approvals_required, req.reason) == ((), 0, REASON)
    assert req.review_due_at == at + timedelta(hours=4) and req.review_open
    assert actions(bg, rid) == [("alice", "break_glass", "-", "APPROVED/GRANTING")]
    assert bg.store.history(rid)[0].reason == REASON
    used = {"request_id": rid, "requester": "alice", "account": "prod", "role": "admin", "role_arn": PROD_ADMIN,
            "expires_at": "2026-11-12T15:01:00Z", "reason": REASON}
    assert jobs.Security("break_glass_used", used) in follow
    assert bg.grants.policies == {}  # the ack path never touches IAM

    bg.run_all(follow)
    assert state(bg, rid) == "APPROVED/ACTIVE"
    (policy,) = bg.grants.policies.values()
    assert policy.users == ["alice"]
    (statement,) = policy.document["Statement"]
    assert statement["Resource"] == PROD_ADMIN and statement["Action"] == "sts:AssumeRole"
    assert statement["Condition"] == {"DateLessThan": {"aws:CurrentTime": "2026-11-12T15:01:00Z"},
                                      "Bool": {"aws:MultiFactorAuthPresent": "true"}}
    (told,) = ephemeral_texts(bg, "alice")
    assert f"Break-glass `{rid}`" in told and "being granted to you now" in told
    assert dm_types(bg) == ["access_granted"]


def test_the_broadcast_is_loud_in_both_channels(bg):
    rid = break_glass(bg)

    (the_card,) = bg.slack.posts(APPROVALS, thread_ts=None)
    assert the_card == card(bg, rid)
    assert the_card.text.startswith("<!here> BREAK-GLASS access")
    assert the_card.blocks[0]["text"]["text"] == f"BREAK-GLASS access {rid}"
    first = the_card.blocks[1]["text"]["text"]
    assert first.startswith("<!here> :rotating_light: <@U0ALICE001> used *break-glass*: `prod/admin`")
    assert "2026-11-12T15:00:00Z" in first
    text = the_card.all_text()
    assert REASON in text and "Break-glass access granted until 15:00 UTC" in text
    assert "Review: *pending*" in text and "<@U0BOB00001> <@U0CAROL001>" in text
    assert the_card.event_type == "access_granted"

    (notice,) = security(bg)
    assert notice.event_type == "break_glass_used"
    assert notice.payload == {"request_id": rid, "requester": "alice", "account": "prod", "role": "admin",
                              "role_arn": PROD_ADMIN, "expires_at": "2026-11-12T15:00:00Z", "reason": REASON}
    assert notice.text.startswith("<!here> :rotating_light: *BREAK-GLASS*: @alice gave themself `prod/admin`")
    assert REASON in notice.text and "2026-11-12T15:00:00Z" in notice.text


def test_a_reason_cannot_ping_or_disguise_links(bg):
    sneaky = "db down <!channel> see <https://evil.example|the runbook> now"
    rid = break_glass(bg, text=f"breakglass prod admin 1h {sneaky}")
    for msg in (card(bg, rid), *security(bg)):
        shown = msg.all_text()
        assert "<!channel>" not in shown and "<https://evil" not in shown
        assert "&lt;!channel&gt;" in shown


def test_a_double_confirm_makes_one_grant(bg):
    value = confirm_value(preview(bg))
    confirm(bg, value)
    second = confirm(bg, value)  # the same button again

    assert len(bg.grants.policies) == 1 and len(bg.store.open_for("alice")) == 1
    assert not any(isinstance(j, jobs.Grant) for j in second)
    assert "This Confirm was already used: it made `req-" in ephemeral_texts(bg, "alice")[-1]


@pytest.mark.parametrize("ending", ["revoked", "expired"])
def test_the_same_confirm_never_grants_again_after_the_grant_ended(bg, ending):
    """One button, one grant: once the first grant is revoked (or expired), clicking the same
    Confirm again within its 15 minutes makes nothing."""
    value = confirm_value(preview(bg))
    rid = next(j.request_id for j in confirm(bg, value) if isinstance(j, jobs.Grant))
    if ending == "revoked":
        bg.run_all(slash(bg, "bob", f"revoke {rid}").jobs)
    else:
        bg.clock.advance(minutes=14)
        bg.store._requests[rid] = dataclasses.replace(bg.store.get(rid), grant_status=GrantStatus.EXPIRED).to_json()
    follow = confirm(bg, value)
    assert not any(isinstance(j, jobs.Grant) for j in follow)
    assert f"already used: it made `{rid}`" in ephemeral_texts(bg, "alice")[-1]
    assert bg.store.open_for("alice") == [] and all(rid in arn for arn in bg.grants.policies)  # nothing new
    assert len(bg.slack.posts(SECURITY, event_type="break_glass_used")) == 1


def test_a_double_confirm_makes_one_grant_even_when_the_open_list_lags(bg, monkeypatch):
    """The per-person list is an eventually consistent index: with it one write behind, the
    second click of the same button still makes no second grant (its id is taken)."""
    value = confirm_value(preview(bg))
    monkeypatch.setattr(bg.store, "open_for", lambda person, claim=None: [])
    confirm(bg, value)
    confirm(bg, value)
    assert len(bg.grants.policies) == 1
    assert len(bg.slack.posts(SECURITY, event_type="break_glass_used")) == 1


@pytest.mark.parametrize("issued", ["", "nan", "2026-11-12T15:00:00Z", "2026-11-12T13:44:59Z"])
def test_a_confirm_whose_issue_time_is_missing_odd_or_outside_its_window_is_refused(bg, issued):
    value = json.loads(confirm_value(preview(bg)))
    value["t"] = issued
    confirm(bg, json.dumps(value))
    said = ephemeral_texts(bg, "alice")[-1]
    assert "more than 15 minutes old" in said or "does not carry a valid request id" in said
    nothing_happened(bg)


def test_two_confirmations_of_two_commands_make_one_grant(bg):
    first, second = confirm_value(preview(bg)), confirm_value(preview(bg))
    confirm(bg, first, message_ts="1794492000.000100")
    confirm(bg, second, message_ts="1794492000.000200")
    assert len(bg.grants.policies) == 1 and len(bg.store.open_for("alice")) == 1
    assert "You already have" in ephemeral_texts(bg, "alice")[-1]


def test_a_redelivered_confirm_acts_once(bg):
    value = confirm_value(preview(bg))
    confirm(bg, value, delivery="trigger-1")
    from chalicelib.usecases.deliveries import Repeated

    with pytest.raises(Repeated):
        confirm(bg, value, delivery="trigger-1")
    assert len(bg.grants.policies) == 1


def test_the_confirm_decides_again_at_click_time(bg):
    """The catalog changed between the command and the click: the click is refused."""
    value = confirm_value(preview(bg))
    role = bg.catalog.accounts["prod"].roles["admin"]
    roles = {**bg.catalog.accounts["prod"].roles, "admin": dataclasses.replace(role, break_glass=())}
    accounts = {**bg.catalog.accounts, "prod": dataclasses.replace(bg.catalog.accounts["prod"], roles=roles)}
    bg.catalog = dataclasses.replace(bg.catalog, accounts=accounts)

    follow = confirm(bg, value)

    assert not any(isinstance(j, jobs.Grant) for j in follow)
    assert "You may not use break-glass on `prod/admin`" in ephemeral_texts(bg, "alice")[-1]
    nothing = [m for m in bg.slack.posts()]
    assert nothing == [] and bg.grants.policies == {}


def test_a_confirm_by_someone_else_is_refused(bg):
    """The button is for the person who saw the preview: anybody else's click makes nothing."""
    value = confirm_value(preview(bg))
    confirm(bg, value, person="dave")
    assert "This Confirm is someone else's" in ephemeral_texts(bg, "dave")[-1]
    nothing_happened(bg)


@pytest.mark.parametrize("value", ["not json", "[]", '{"a":"prod","r":"admin","d":"1h"}', '{"a":1}'])
def test_a_confirm_button_with_a_bad_value_changes_nothing(bg, value):
    confirm(bg, value)
    assert "does not carry a valid request id" in ephemeral_texts(bg, "alice")[-1]
    nothing_happened(bg)


def test_a_break_glass_grant_ends_and_is_cut_off_like_any_other(bg):
    rid = break_glass(bg)
    bg.clock.advance(hours=1, seconds=1)
    bg.sweep()
    req = bg.store.get(rid)
    assert req.grant_status is GrantStatus.EXPIRED and req.cut_before is not None
    assert bg.grants.policies == {}
    assert "access_expired" in dm_types(bg)


# ---------------------------------------------------------------- defence in depth at grant time

def test_a_break_glass_record_without_its_audit_event_is_not_granted(bg):
    """What a forger with PutItem could write: break_glass=True, no approvals, GRANTING, but
    the history holds no break_glass event by the requester (here: an ordinary request
    turned into one). The grant step refuses it, nothing reaches IAM, #security is told."""
    rid = ask(bg, "alice", f"prod admin 1h {REASON}")
    req = bg.store.get(rid)
    now = bg.clock()
    forged = dataclasses.replace(req, status=RequestStatus.APPROVED, grant_status=GrantStatus.GRANTING,
                                 break_glass=True, decided_by="alice", decided_at=now, approvals_required=0,
                                 expires_at=now + timedelta(hours=1), version=req.version + 1)
    bg.store.transition(req, forged, event_for(req, forged, at=now, actor="alice", action="granted"))

    bg.run_all([jobs.Grant(rid)])

    after = bg.store.get(rid)
    assert after.grant_status is GrantStatus.FAILED
    assert "the audit trail has no break-glass event by @alice" in after.note
    assert bg.grants.policies == {}
    assert [m.event_type for m in security(bg)] == ["grant_failed"]


@pytest.mark.parametrize("change, why", [
    ({"requester": "dave", "requester_slack": "U0DAVE0001"}, "@dave may not use break-glass"),
    ({"expires_at": T0 + timedelta(hours=2), "duration_seconds": 7200}, "later than break-glass on prod/admin allows"),
])
def test_a_break_glass_record_the_catalog_would_not_allow_is_not_granted(bg, change, why):
    from chalicelib.domain.decide import decide_grant

    value = confirm_value(preview(bg))
    (rid,) = [j.request_id for j in confirm(bg, value, run=False) if isinstance(j, jobs.Grant)]
    req = dataclasses.replace(bg.store.get(rid), **change)
    person = bg.catalog.people[req.requester]
    if "requester" in change:
        req = dataclasses.replace(req, principal=person.principal)
    check = decide_grant(req, bg.role_of(req), person, bg.clock(), [], recorded_break_glass=True)
    assert not check.allowed and why in check.reason
    honest = decide_grant(bg.store.get(rid), bg.role_of(req), bg.catalog.people["alice"], bg.clock(), [],
                          recorded_break_glass=True)
    assert honest.allowed


def test_an_ordinary_record_is_judged_as_before(bg):
    """Without break_glass, a record with no approvals is refused as it always was, whatever
    the break-glass cross-check says."""
    from chalicelib.domain.decide import decide_grant

    rid = ask(bg, "alice")
    req = bg.store.get(rid)
    now = bg.clock()
    approved = dataclasses.replace(req, status=RequestStatus.APPROVED, grant_status=GrantStatus.GRANTING,
                                   decided_by="alice", decided_at=now, expires_at=now + timedelta(hours=1))
    check = decide_grant(approved, bg.role_of(req), bg.catalog.people["alice"], now, [], recorded_break_glass=True)
    assert not check.allowed and "0 of 2 approvals count" in check.reason


# ---------------------------------------------------------------- alerts under a break-glass grant

def test_a_role_assumed_under_break_glass_is_loud_and_says_so(bg):
    rid = break_glass(bg)
    bg.clock.set(datetime(2026, 11, 12, 14, 3, 9, tzinfo=timezone.utc))

    outcome = handle(bg, load_cloudtrail("assume_role_bastion_copy"))

    assert outcome == AlertOutcome(kind="covered", request_id=rid, posted=True)
    (alert,) = bg.slack.posts(SECURITY, event_type="role_assumed")
    assert alert.payload["request_id"] == rid and alert.payload["kind"] == "covered"
    assert alert.payload["break_glass"] is True
    assert alert.text.startswith(f"<!here> BREAK-GLASS grant {rid} used")
    shown = alert.all_text()
    assert "Production role assumed" not in shown  # never the quiet covered form
    assert f"*BREAK-GLASS* grant {rid} by @alice" in shown and REASON in shown and "Review: *pending*" in shown


def test_the_alert_says_how_the_review_went(bg):
    rid = break_glass(bg)
    from tests.service.test_breakglass_review import ack

    ack(bg, "bob", rid)
    bg.clock.set(datetime(2026, 11, 12, 14, 3, 9, tzinfo=timezone.utc))
    handle(bg, load_cloudtrail("assume_role_bastion_copy"))
    (alert,) = bg.slack.posts(SECURITY, event_type="role_assumed")
    assert "Review: *acknowledged by @bob*" in alert.all_text() and alert.text.startswith("<!here>")


def test_an_ordinary_grant_stays_quiet(bg):
    rid = granted(bg)
    bg.clock.set(datetime(2026, 11, 12, 14, 3, 9, tzinfo=timezone.utc))
    handle(bg, load_cloudtrail("assume_role_bastion_copy"))
    (alert,) = bg.slack.posts(SECURITY, event_type="role_assumed")
    assert alert.payload["request_id"] == rid and "break_glass" not in alert.payload
    assert "<!here>" not in alert.all_text() and "BREAK-GLASS" not in alert.all_text()


def test_in_a_burst_a_break_glass_call_is_named_on_a_loud_digest(bg):
    rid = break_glass(bg)
    bg.clock.set(datetime(2026, 11, 12, 14, 3, 9, tzinfo=timezone.utc))
    bg.slack.fail_next("try_post", RateLimited(1))  # Slack's pace is reached: the call goes into a digest

    outcome = handle(bg, load_cloudtrail("assume_role_bastion_copy"))
    if not bg.slack.posts(SECURITY, event_type="role_assumed_digest"):
        bg.clock.advance(seconds=2)
        bg.sweep()

    assert outcome.grouped and outcome.request_id == rid
    (digest,) = bg.slack.posts(SECURITY, event_type="role_assumed_digest")
    assert digest.payload["kind"] == "break_glass" and digest.payload["break_glass"] == [rid]
    assert "BREAK-GLASS used" in digest.text and "NO APPROVED GRANT" not in digest.all_text()
    assert digest.text.startswith("<!here>")
    assert f"under BREAK-GLASS grant {rid} of alice" in digest.all_text()
    assert "counts" not in digest.payload  # never only counted


def test_in_a_burst_a_break_glass_call_never_joins_a_quiet_digest(bg):
    """alice holds an ordinary prod/readonly grant too: a call under it opens a quiet digest
    (Slack's pace reached); her next call, under the break-glass grant, does not join it."""
    import copy

    from tests.service.helpers import approve

    readonly = ask(bg, "alice", "prod readonly 2h checking the dashboards")
    approve(bg, "bob", readonly)
    rid = break_glass(bg)
    bg.clock.set(datetime(2026, 11, 12, 14, 3, 9, tzinfo=timezone.utc))
    quiet = load_cloudtrail("assume_role_bastion_copy")
    text = json.dumps(quiet).replace("role/admin", "role/readonly").replace("assumed-role/admin", "assumed-role/readonly")
    quiet = json.loads(text)
    quiet["detail"]["eventID"], quiet["detail"]["sharedEventID"] = "e7e70000-0000-4000-8000-0000000000aa", \
        "5a5ed000-0000-4000-8000-0000000000aa"
    bg.slack.fail_next("try_post", RateLimited(30), times=3)  # every post this second is refused
    assert handle(bg, quiet).grouped
    loud = copy.deepcopy(load_cloudtrail("assume_role_bastion_copy"))
    outcome = handle(bg, loud)

    assert outcome.grouped and outcome.request_id == rid
    bg.slack.clear_faults()
    bg.clock.advance(seconds=31)
    bg.sweep()
    digests = {d.payload["kind"]: d for d in bg.slack.posts(SECURITY, event_type="role_assumed_digest")}
    assert set(digests) == {"covered", "break_glass"}
    assert digests["covered"].payload["counts"] == {readonly: 1}
    assert digests["break_glass"].payload["break_glass"] == [rid] and digests["break_glass"].text.startswith("<!here>")


def test_a_stale_confirm_is_refused(bg):
    """A Confirm left on screen does not grant by a later slip: 15 minutes after its message."""
    value = confirm_value(preview(bg))
    bg.clock.advance(minutes=15, seconds=1)
    confirm(bg, value, message_ts="1794492000.000100")  # posted at T0
    assert "more than 15 minutes old" in ephemeral_texts(bg, "alice")[-1]
    nothing_happened(bg)
    bg.clock.set(T0 + timedelta(minutes=15))
    confirm(bg, value, message_ts="1794492000.000100")
    assert len(bg.grants.policies) == 1


def test_help_says_where_you_may_break_glass(bg):
    shown = slash(bg, "alice", "help").text
    assert "`prod/admin` up to 4h" in shown and "break-glass up to 1h" in shown
    assert "breakglass" in shown  # the usage names the command
    assert "break-glass up to" not in slash(bg, "dave", "help").text


def test_the_longest_reason_fits_the_confirm_button(bg):
    """Slack's button value holds 2,000 characters: a 300-character reason in any script fits."""
    reason = ("база данных недоступна " * 20)[:300].strip()
    value = confirm_value(preview(bg, text=f"breakglass prod admin 1h {reason}"))
    assert len(value) <= 2000 and json.loads(value)["why"] == reason
    confirm(bg, value)
    assert len(bg.grants.policies) == 1
