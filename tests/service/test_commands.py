"""Use case: a slash command end to end on the ack path (chalicelib/usecases/commands.py):
who asks, what they typed, then help / list / revoke / request."""

from __future__ import annotations

import pytest

from chalicelib.slack.parse import USAGE, SlashCommand
from chalicelib.usecases.commands import run_command
from chalicelib.usecases.outcomes import Help, Listing, NotInCatalog, Unreadable
from tests.fakes import SAMPLE_CATALOG, make_service
from tests.service.helpers import approve, ask, granted, slash


@pytest.mark.parametrize("text", ["", "help", "--help", "HELP me"])
def test_help_shows_what_the_person_may_request(svc, text):
    reply = slash(svc, "alice", text)
    assert reply.jobs == []
    assert reply.text.startswith(USAGE)
    assert "What you (@alice) may request:" in reply.text
    assert "• `dev/admin` up to 1d — 1 approval from @bob, @carol" in reply.text
    assert ("• `prod/admin` up to 4h — 2 approvals from @bob, @carol; extendable to 8h in total (1 approval); "
            "reason required; production") in reply.text
    assert svc.slack.messages == []


def test_help_names_only_who_could_approve_the_asker(svc):
    text = slash(svc, "bob", "help").text
    assert "prod/admin" not in text  # bob is not one of its requesters
    assert "• `prod/readonly` up to 8h — 1 approval from @carol; reason required; production" in text
    assert "• `dev/admin` up to 1d — 1 approval from @bob, @carol" in text  # self-approval allowed there


def test_help_leaves_out_what_could_never_be_approved():
    svc = make_service(SAMPLE_CATALOG.read_text() + '\n[accounts.dev.roles.solo]\napprovers = ["bob"]\n')
    assert "dev/solo" not in slash(svc, "bob", "help").text
    assert "dev/solo" in slash(svc, "alice", "help").text
    answer = run_command(svc, SlashCommand("U0BOB00001", "C1", "help", "/aws-access", ""))
    assert isinstance(answer.outcome, Help) and [r.label for r in answer.outcome.roles] == [
        "dev/admin", "prod/readonly"]


def test_list_with_nothing_open(svc):
    assert slash(svc, "alice", "list").text == "You have no pending or active requests."


def test_list_shows_own_open_requests_only(svc):
    active = granted(svc)  # 14:00 -> active until 16:02
    pending = ask(svc, "alice", "dev admin 30m")
    ended = ask(svc, "alice", "prod readonly 1h x")
    svc.run_all(slash(svc, "alice", f"revoke {ended}").jobs)  # the cancel's card is delivered
    ask(svc, "dave", "prod admin 1h not alice's")
    svc.clock.advance(minutes=30)  # 14:32:15

    text = slash(svc, "alice", "list").text

    assert text == ("Your requests:\n"
                    f"• `{active}` `prod/admin` 2h — *active* until 16:02 UTC (1h30m left)\n"
                    f"• `{pending}` `dev/admin` 30m — pending, 0 of 1 approvals")


def test_list_shows_an_approver_what_waits_for_them(svc):
    first = ask(svc, "alice", "prod admin 2h incident")
    second = ask(svc, "dave", "prod readonly 1h dashboards")
    own = ask(svc, "bob", "prod readonly 1h mine")

    text = slash(svc, "bob", "list").text
    assert text.startswith(f"Your requests:\n• `{own}`")
    assert "Waiting for your approval (on the cards in the approvals channel):" in text
    assert f"• `{first}` @alice wants `prod/admin` for 2h, 0 of 2 approvals, open until 15:00 UTC" in text
    assert f"• `{second}` @dave wants `prod/readonly` for 1h" in text
    assert own not in text.split("Waiting")[1]  # his own request is not his to approve

    approve(svc, "bob", first)
    after = slash(svc, "bob", "list").text
    assert first not in after and second in after  # he already approved it
    assert first in slash(svc, "carol", "list").text and own in slash(svc, "carol", "list").text
    assert "Waiting" not in slash(svc, "dave", "list").text  # dave approves nothing


def test_list_outcome_is_a_value(svc):
    rid = ask(svc)
    answer = run_command(svc, SlashCommand("U0CAROL001", "C1", "list", "/aws-access", ""))
    assert isinstance(answer.outcome, Listing)
    assert [r.request_id for r in answer.outcome.waiting] == [rid] and answer.outcome.own == []
    assert answer.outcome.now == svc.clock()


@pytest.mark.parametrize("text,reason", [
    ("list all", "`list` takes no arguments"),
    ("revoke", "usage: `/aws-access revoke &lt;request-id&gt;` (see `/aws-access list`)"),
    ("revoke nonsense", "'nonsense' is not a request id (they look like req-20261112-3fa9c1)"),
    ("prod admin", "a request needs an account, a role and a duration."),
    ("prod <admin> 1h", "'&lt;admin&gt;' is not a role"),
    ("prod admin 1h " + "x" * 301, "the reason is 301 characters; keep it to 300 or fewer"),
])
def test_unreadable_commands_change_nothing(svc, text, reason):
    ask(svc)
    before = svc.store.snapshot()
    reply = slash(svc, "alice", text)
    assert reply.text.startswith(reason) and reply.jobs == []
    assert svc.store.snapshot() == before


def test_people_not_in_the_catalog_are_told_so(svc):
    reply = slash(svc, None, "prod admin 1h x", user_id="U0NOBODY01")
    assert reply.text == ("You are not in the Drawbridge catalog (Slack user `U0NOBODY01`); "
                          "ask an admin to add you to `policies/access.toml`.")
    assert reply.jobs == [] and svc.store.requests() == []
    for text in ("help", "list", "revoke req-20261112-000001"):
        assert run_command(svc, SlashCommand("U0NOBODY01", "C1", text, "/aws-access", "")).outcome == NotInCatalog(
            "U0NOBODY01")


def test_words_that_do_not_parse_are_answered_before_the_catalog_is_asked(svc):
    outcome = run_command(svc, SlashCommand("U0NOBODY01", "C1", "list all", "/aws-access", "")).outcome
    assert outcome == Unreadable("`list` takes no arguments")


def test_revoke_and_request_go_through_the_command(svc):
    rid = ask(svc)
    assert slash(svc, "alice", f"revoke `{rid.upper()}`").text == f"Cancelled `{rid}` (`prod/admin`)."
    assert slash(svc, "alice", "PROD Admin 1h again").text.startswith("Request `")
