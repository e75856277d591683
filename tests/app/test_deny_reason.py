"""Deny with a reason (issue 17): the card's *Deny with reason…* opens a small form
(``views.open`` with the click's trigger id); its Submit denies the request, decided again
then, and the requester reads the reason in the card and their DM. Signed HTTP under
chalice.test.Client, against moto and the Slack stand-in (whose ``views.open`` behaves as
Slack's: one view per trigger id, within 3 seconds).
"""

from __future__ import annotations

import json

from chalicelib.domain.model import RequestStatus
from chalicelib.slack import views
from local import slack_client
from tests.app.test_lifecycle import request_id_from

APPROVALS = "C0APPROVE1"
WHY = "use prod/readonly for this & ask again if it is not enough"


def ask(app_client) -> str:
    return request_id_from(app_client.command("alice", "prod admin 2h fixing incident 4521").text)


def open_deny_form(app_client, slack, person: str, rid: str) -> dict | None:
    before = len(slack.opened_views())
    reply = app_client.click(person, views.DENY_WITH_REASON, rid)
    assert reply.status == 200
    opened = slack.opened_views()
    return opened[-1] if len(opened) > before else None


def deny_why(app_client, person: str, view: dict, why: str | None):
    return app_client.submit(person, view, {views.DENY_REASON_BLOCK: why})


def audit(store, rid: str) -> list[tuple[str, str]]:
    return [(e.actor, e.action) for e in store.history(rid)]


def test_the_form_opens_for_an_approver_and_changes_nothing(app_client, slack, store):
    rid = ask(app_client)
    card = slack.find("access_requested", APPROVALS)[-1]
    labels = [e["text"]["text"] for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Approve", "Deny", "Deny with reason…"]

    view = open_deny_form(app_client, slack, "bob", rid)

    assert view is not None and view["callback_id"] == views.DENY_FORM
    assert json.loads(view["private_metadata"])["request_id"] == rid
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == [views.DENY_REASON_BLOCK]
    assert "alice wants prod/admin for 2h" in json.dumps(view)
    req = store.get(rid)
    assert (req.status, req.version) == (RequestStatus.PENDING, 1)  # opening the form writes nothing


def test_submitting_denies_and_the_requester_reads_why(app_client, slack, store):
    rid = ask(app_client)
    view = open_deny_form(app_client, slack, "bob", rid)

    reply = deny_why(app_client, "bob", view, f"  {WHY}\n")

    assert (reply.status, reply.body) == (200, None)  # closes the form
    req = store.get(rid)
    assert (req.status, req.decided_by, req.note) == (RequestStatus.DENIED, "bob", WHY)
    assert audit(store, rid)[-1] == ("bob", "denied")
    assert store.history(rid)[-1].reason.endswith(f": {WHY}")
    card = slack.find("access_denied", APPROVALS)[-1]
    assert card.event_payload == {"request_id": rid, "denied_by": "bob", "reason": WHY}
    assert WHY in card.displayed_text() and "&amp;" in card.all_text()  # escaped once, shown as typed
    assert not [b for b in card.blocks if b["type"] == "actions"]
    (dm,) = slack.dms("U0ALICE001")
    assert dm.event_type == "access_denied" and dm.event_payload["reason"] == WHY
    assert f"was denied by <@U0BOB00001>: “{WHY.replace('&', '&amp;')}”" in dm.text


def test_an_empty_reason_is_a_plain_denial(app_client, slack, store):
    rid = ask(app_client)
    view = open_deny_form(app_client, slack, "carol", rid)
    assert deny_why(app_client, "carol", view, None).body is None
    req = store.get(rid)
    assert (req.status, req.decided_by, req.note) == (RequestStatus.DENIED, "carol", None)
    (dm,) = slack.dms("U0ALICE001")
    assert dm.event_payload == {"request_id": rid, "denied_by": "carol"} and dm.text.endswith("<@U0CAROL001>.")


def test_a_double_submission_denies_once(app_client, slack, store):
    rid = ask(app_client)
    view = open_deny_form(app_client, slack, "bob", rid)
    first = deny_why(app_client, "bob", view, WHY)
    again = deny_why(app_client, "bob", view, WHY)  # Slack redelivers, or a double click
    assert (first.body, again.body) == (None, None)
    assert [a for _, a in audit(store, rid)] == ["requested", "denied"]
    assert len(slack.dms("U0ALICE001")) == 1


def test_a_request_decided_while_the_form_was_open_keeps_its_decision(app_client, slack, store):
    rid = ask(app_client)
    view = open_deny_form(app_client, slack, "bob", rid)
    app_client.deny("carol", rid)  # carol was quicker, with the plain Deny

    reply = deny_why(app_client, "bob", view, WHY)

    assert reply.status == 200 and reply.body["response_action"] == "errors"
    (error,) = reply.body["errors"].values()
    assert list(reply.body["errors"]) == [views.DENY_REASON_BLOCK]
    assert "already denied by @carol" in error and "`" not in error  # plain text, on the form
    req = store.get(rid)
    assert (req.decided_by, req.note) == ("carol", None)
    assert [a for _, a in audit(store, rid)] == ["requested", "denied"]


def test_who_may_not_deny_gets_no_form(app_client, slack, store):
    rid = ask(app_client)
    assert open_deny_form(app_client, slack, "alice", rid) is None  # her own request
    (refusal,) = slack.ephemerals("U0ALICE001")
    assert "not an approver" in refusal.text or "own request" in refusal.text
    assert store.get(rid).version == 1


def test_the_submitter_is_judged_again_not_the_form(app_client, slack, store):
    """The form names the request, nothing more: a submission of bob's form by dave (who
    approves nothing), or of one edited to name another request, is decided again - from
    the catalog and the record of the request it names."""
    rid = ask(app_client)
    view = open_deny_form(app_client, slack, "bob", rid)

    reply = deny_why(app_client, "dave", view, "no")

    assert reply.body["response_action"] == "errors"
    assert "not an approver of prod/admin" in reply.body["errors"][views.DENY_REASON_BLOCK]
    odd = deny_why(app_client, "bob", {**view, "private_metadata": json.dumps({"request_id": "req-x"})}, "no")
    assert "does not name a request" in odd.body["errors"][views.DENY_REASON_BLOCK]
    assert store.get(rid).status is RequestStatus.PENDING and store.get(rid).version == 1


def test_a_form_slack_would_not_open_is_explained(app_client, slack, store):
    rid = ask(app_client)
    slack.fail_next("views.open", error="expired_trigger_id")
    assert open_deny_form(app_client, slack, "bob", rid) is None
    (answer,) = slack.ephemerals("U0BOB00001")
    assert "could not open the deny form" in answer.text and "expired_trigger_id" in answer.text
    assert store.get(rid).version == 1


def test_a_form_submitted_by_someone_no_longer_in_the_catalog_is_refused_on_the_form(app_client, slack, store):
    rid = ask(app_client)
    view = open_deny_form(app_client, slack, "bob", rid)
    body = slack_client.view_submission_body("U0GONE0001", view, {views.DENY_REASON_BLOCK: "x"})
    reply = app_client._post("/slack/interactions", body)
    assert reply.status == 200 and reply.body["response_action"] == "errors"
    assert "not in the Drawbridge catalog" in reply.body["errors"][views.DENY_REASON_BLOCK]
    assert "unexpected error" not in reply.body["errors"][views.DENY_REASON_BLOCK]
    assert store.get(rid).version == 1
