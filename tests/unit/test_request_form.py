"""The request form's view (chalicelib/slack/views.request_form): only what the person may
request, durations up to the longest cap, Slack's limits; and field errors as plain text."""

from __future__ import annotations

import json
from types import SimpleNamespace

from chalicelib.slack import views
from chalicelib.slack.parse import MAX_REASON


def block(view: dict, block_id: str) -> dict:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def values(view: dict, block_id: str) -> list[str]:
    return [o["value"] for o in block(view, block_id)["element"]["options"]]


def form_for(catalog, person: str, channel: str = "C0CMD00001") -> dict:
    return views.request_form(person, catalog.requestable_by(person), channel)


def test_the_form_offers_only_the_roles_the_person_may_request(catalog):
    assert values(form_for(catalog, "alice"), views.ROLE_BLOCK) == ["dev/admin", "prod/admin", "prod/readonly"]
    assert values(form_for(catalog, "bob"), views.ROLE_BLOCK) == ["dev/admin", "prod/readonly"]  # not prod/admin


def test_each_role_says_its_cap_and_whether_it_needs_a_reason(catalog):
    options = {o["value"]: o["description"]["text"] for o in block(form_for(catalog, "alice"),
                                                                   views.ROLE_BLOCK)["element"]["options"]}
    assert options == {"dev/admin": "up to 1d", "prod/admin": "up to 4h; reason required; production",
                       "prod/readonly": "up to 8h; reason required; production"}
    hint = block(form_for(catalog, "alice"), views.REASON_BLOCK)["hint"]["text"]
    assert "Required for prod/admin, prod/readonly." in hint


def test_durations_go_up_to_the_longest_cap_and_include_each_cap():
    roles = [SimpleNamespace(label="dev/a", max_duration_seconds=5400, reason_required=False, production=False),
             SimpleNamespace(label="dev/b", max_duration_seconds=1800, reason_required=False, production=False)]
    view = views.request_form("alice", roles)
    assert values(view, views.DURATION_BLOCK) == ["15m", "30m", "1h", "1h30m"]
    assert block(view, views.ROLE_BLOCK)["element"].get("initial_option") is None
    assert "private_metadata" not in view  # no channel: the answer is a DM


def test_the_form_is_a_modal_slack_accepts(catalog):
    view = form_for(catalog, "alice")
    assert (view["type"], view["callback_id"]) == ("modal", views.REQUEST_FORM)
    assert all(len(view[k]["text"]) <= 24 for k in ("title", "submit", "close"))
    assert json.loads(view["private_metadata"]) == {"channel": "C0CMD00001"}
    reason = block(view, views.REASON_BLOCK)
    assert reason["optional"] is True and reason["element"]["max_length"] == MAX_REASON
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["role", "duration", "reason"]
    assert all(b["element"]["action_id"] == b["block_id"] for b in view["blocks"] if b["type"] == "input")


def test_one_role_is_chosen_already():
    role = SimpleNamespace(label="dev/a", max_duration_seconds=3600, reason_required=False, production=False)
    select = block(views.request_form("alice", [role]), views.ROLE_BLOCK)["element"]
    assert select["initial_option"] == select["options"][0]


def test_more_roles_than_a_select_holds_are_cut_and_said():
    roles = [SimpleNamespace(label=f"acct{i:03d}/role", max_duration_seconds=3600, reason_required=False,
                             production=False) for i in range(150)]
    view = views.request_form("alice", roles)
    assert len(values(view, views.ROLE_BLOCK)) == views.MAX_OPTIONS
    note = view["blocks"][-1]["elements"][0]["text"]
    assert "first 100 of the 150 roles" in note and "&lt;account&gt;" in note and "<account>" not in note


def test_field_errors_are_the_replys_words_as_plain_text():
    text = "production requests need a reason: `/aws-access prod admin 2h &lt;reason&gt;`"
    assert views.plain_text(text) == "production requests need a reason: /aws-access prod admin 2h <reason>"
    assert views.plain_text("unknown role 'R&amp;D'") == "unknown role 'R&D'"
    assert views.plain_text("&amp;lt;") == "&lt;"  # decoded once
