"""Slack user groups as approvers: the Slack adapter (usergroups.list + usergroups.users.list,
kept a minute) against the local stand-in, and their resolution into catalog people."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
from slack_sdk import WebClient

from chalicelib.adapters.slack_notifier import SlackUserGroups
from chalicelib.usecases.groups import people_in, resolved
from local.slack_standin import SlackStandin
from tests.fakes import FakeClock, FakeUserGroups, make_service

TOKEN = "xoxb-test-token"
BOB, CAROL, DAVE, STRANGER = "U0BOB00001", "U0CAROL001", "U0DAVE0001", "U0NOTINCAT"


@pytest.fixture
def standin() -> Iterator[SlackStandin]:
    s = SlackStandin(TOKEN).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def groups(standin: SlackStandin, clock: FakeClock) -> SlackUserGroups:
    return SlackUserGroups(WebClient(token=TOKEN, base_url=standin.url, retry_handlers=[]), clock=clock)


def group_calls(standin: SlackStandin) -> list[str]:
    return [c.method for c in standin.calls if c.method.startswith("usergroups.")]


def test_members_by_handle_kept_a_minute(standin: SlackStandin, groups: SlackUserGroups, clock: FakeClock) -> None:
    standin.add_usergroup("sre-leads", [BOB, CAROL])
    assert groups.members("sre-leads") == {BOB, CAROL}
    assert groups.members("sre-leads") == {BOB, CAROL}  # a burst of clicks: one pair of calls
    assert group_calls(standin) == ["usergroups.list", "usergroups.users.list"]
    standin.set_usergroup_members("sre-leads", [BOB])
    clock.advance(seconds=59)
    assert groups.members("sre-leads") == {BOB, CAROL}  # still the kept answer
    clock.advance(seconds=1)
    assert groups.members("sre-leads") == {BOB}  # a minute on: Slack is asked again
    assert len(group_calls(standin)) == 4


def test_unknown_and_disabled_handles_resolve_to_none(standin: SlackStandin, groups: SlackUserGroups) -> None:
    standin.add_usergroup("old-team", [DAVE], disabled=True)
    assert groups.members("nobody-here") is None
    assert groups.members("old-team") is None  # disabled: include_disabled is never asked for


def test_a_slack_failure_resolves_to_none_for_15_seconds(standin: SlackStandin, groups: SlackUserGroups,
                                                         clock: FakeClock) -> None:
    standin.add_usergroup("sre-leads", [BOB])
    standin.add_usergroup("dbas", [CAROL])
    standin.fail_next("usergroups.users.list", error="internal_error")
    assert groups.members("sre-leads") is None  # fail closed: nobody from the group
    calls = len(group_calls(standin))
    # while Slack is failing, a command that looks at several roles does not wait on it again
    assert (groups.members("sre-leads"), groups.members("dbas")) == (None, None)
    assert len(group_calls(standin)) == calls
    clock.advance(seconds=15)
    assert groups.members("sre-leads") == {BOB}  # 15 s on, Slack is asked again
    clock.advance(seconds=60)  # the kept answers are stale: usergroups.list itself fails
    standin.fail_next("usergroups.list", status=500)
    assert groups.members("sre-leads") is None
    clock.advance(seconds=15)
    assert groups.members("sre-leads") == {BOB} and groups.members("dbas") == {CAROL}



def service_with_group(members: dict[str, set[str]]):
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "policies" / "access.toml").read_text()
    old = 'approvers = ["bob", "carol"]       # bob\'s own'
    text = text.replace(old, 'approvers = ["@sre-leads"]       # bob\'s own')
    assert '"@sre-leads"' in text
    return make_service(text, groups=FakeUserGroups(members))


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture):
    """The warnings logged so far (read when called: caplog's list is per test phase)."""
    caplog.set_level(logging.WARNING, logger="drawbridge")
    return lambda: [r for r in caplog.records if r.name == "drawbridge" and r.levelno == logging.WARNING]


def test_members_who_are_not_catalog_people_are_ignored_and_reported(warnings) -> None:
    svc = service_with_group({"sre-leads": {BOB, STRANGER}})
    role = svc.catalog.find_role("prod", "readonly")
    assert role.approvers == ("@sre-leads",)
    assert people_in(svc, "@sre-leads") == {"bob"}
    assert resolved(svc, role).approvers == ("bob",)
    (report,) = [r for r in warnings() if r.getMessage() == "user group members not in the catalog are ignored"]
    assert (report.handle, report.ignored, report.slack_users) == ("@sre-leads", 1, [STRANGER])
    people_in(svc, "@sre-leads")  # the same strangers: not reported again
    assert len([r for r in warnings() if r.getMessage().startswith("user group members")]) == 1


def test_an_unresolvable_group_supplies_nobody(warnings) -> None:
    svc = service_with_group({})
    assert resolved(svc, svc.catalog.find_role("prod", "readonly")).approvers == ()
    assert any(r.getMessage() == "user group supplies no approvers: not resolved" and r.handle == "@sre-leads"
               for r in warnings())


class _SlowPages:
    """conversations.members in pages of one member, each page taking ``page_seconds`` of a
    fake monotonic clock; ``fail`` makes every call an error."""

    def __init__(self, members: list[str], page_seconds: float, fail: bool = False) -> None:
        self.members, self.page_seconds, self.fail = members, page_seconds, fail
        self.now = 0.0
        self.calls = 0

    def monotonic(self) -> float:
        return self.now

    def conversations_members(self, channel: str, limit: int, cursor: str | None = None) -> dict:
        self.calls += 1
        self.now += self.page_seconds
        if self.fail:
            raise TimeoutError("read timed out")
        i = int(cursor or 0)
        more = i + 1 < len(self.members)
        return {"members": [self.members[i]], "response_metadata": {"next_cursor": str(i + 1) if more else ""}}


def test_channel_members_stop_at_one_overall_deadline_across_pages(clock: FakeClock) -> None:
    slow = _SlowPages([BOB, CAROL, DAVE, STRANGER], page_seconds=0.6)
    groups = SlackUserGroups(slow, clock=clock, monotonic=slow.monotonic)
    assert groups.channel_members("C0SECURIT1") is None  # 3 pages would be 1.8 s: fail closed at 1.5
    assert slow.calls == 3  # pages at 0, 0.6 and 1.2 s; no fourth after 1.8 s
    fast = _SlowPages([BOB, CAROL, DAVE], page_seconds=0.1)
    assert SlackUserGroups(fast, clock=clock, monotonic=fast.monotonic).channel_members("C0X") == {BOB, CAROL, DAVE}


def test_a_channel_members_failure_is_kept_15_seconds(clock: FakeClock) -> None:
    slack = _SlowPages([BOB], page_seconds=0.1, fail=True)
    groups = SlackUserGroups(slack, clock=clock, monotonic=slack.monotonic)
    assert groups.channel_members("C0SECURIT1") is None
    assert groups.channel_members("C0SECURIT1") is None and slack.calls == 1  # not asked again at once
    slack.fail = False
    clock.advance(seconds=14)
    assert groups.channel_members("C0SECURIT1") is None and slack.calls == 1
    clock.advance(seconds=1)
    assert groups.channel_members("C0SECURIT1") == {BOB} and slack.calls == 2  # 15 s on: asked again
