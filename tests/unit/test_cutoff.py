"""Session cut-offs: the deny document that ends a person's role sessions when their grant ends.

The documents are compared whole (exactly what IAM will receive), and a tiny evaluator
below applies their conditions to a (aws:userid, aws:TokenIssueTime) pair the way IAM
does for these three operators, so the tests can ask "is this session cut?".
"""

from __future__ import annotations

import fnmatch
import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.cutoff import (
    EMPTY_STATEMENT,
    CutOff,
    bound_of,
    cutoff_statement,
    document,
    grant_end,
    merge,
    parse,
    role_wide_statement,
    shared_statement,
    statement_id,
)
from chalicelib.domain.model import parse_iso
from chalicelib.domain.timing import IAM_SETTLE, MAX_SESSION
from chalicelib.policy import MANAGED_POLICY_MAX_CHARS, iam_size, render

ROLE = "AROAXXXXXXXXXXXXXXXXX"  # 21 characters, like a real role unique id
OTHER_ROLE = "AROAYYYYYYYYYYYYYYYYY"


def t(hh: int, mm: int, ss: int = 0, us: int = 0) -> datetime:
    return datetime(2026, 11, 12, hh, mm, ss, us, tzinfo=timezone.utc)


# -- a tiny IAM evaluator for the three condition operators the document uses -------------


def _values(v) -> list:
    return v if isinstance(v, list) else [v]


def _matches(statement: dict, userid: str, issued: datetime) -> bool:
    context = {"aws:userid": userid, "aws:TokenIssueTime": issued}
    for operator, keys in statement["Condition"].items():
        for key, wanted in keys.items():
            have = context[key]
            if operator == "StringEquals":
                ok = any(have == w for w in _values(wanted))
            elif operator == "StringLike":
                ok = any(fnmatch.fnmatchcase(have, w) for w in _values(wanted))
            elif operator == "DateLessThan":
                ok = any(have < parse_iso(w) for w in _values(wanted))
            else:
                raise AssertionError(f"operator the evaluator does not know: {operator}")
            if not ok:
                return False
    return True


def denied(doc: dict, userid: str, issued: datetime) -> bool:
    """Whether a session with this userid, issued at ``issued``, is denied everything."""
    return any(s["Effect"] == "Deny" and s["Action"] == "*" and s["Resource"] == "*"
               and _matches(s, userid, issued) for s in doc["Statement"])


# -- golden documents -----------------------------------------------------------------------


def test_expiry_golden():
    # a grant expiring at 16:02:15: IAM refused AssumeRole from 16:02:15 on
    cut = CutOff(ROLE, "alice", grant_end(t(16, 2, 15)), "req-20261112-0a11ce")
    result = merge(None, [cut], now=t(16, 2, 40))
    assert result.document == {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Cutreq202611120a11ce",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:userid": "AROAXXXXXXXXXXXXXXXXX:alice"},
                "DateLessThan": {"aws:TokenIssueTime": "2026-11-12T16:02:16Z"},
            },
        }],
    }
    assert render(result.document) == (
        '{"Version":"2012-10-17","Statement":[{"Sid":"Cutreq202611120a11ce","Effect":"Deny","Action":"*",'
        '"Resource":"*","Condition":{"StringEquals":{"aws:userid":"AROAXXXXXXXXXXXXXXXXX:alice"},'
        '"DateLessThan":{"aws:TokenIssueTime":"2026-11-12T16:02:16Z"}}}]}'
    )
    assert (result.changed, result.kept, result.pruned, result.fallback) == (True, (cut,), (), False)


def test_revoke_golden_ends_when_iam_stops_honouring_the_grant():
    # revoked at 14:30:05 (asked), detached at 14:30:07.250; the grant would have run to 16:02:15
    end = grant_end(t(16, 2, 15), detached_at=t(14, 30, 7, 250_000))
    assert end == t(14, 35, 7, 250_000) == t(14, 30, 7, 250_000) + IAM_SETTLE
    result = merge(None, [CutOff(ROLE, "bob", end, "req-20261112-0b0b0b")], now=t(14, 30, 8))
    assert result.document == {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "Cutreq202611120b0b0b",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"aws:userid": "AROAXXXXXXXXXXXXXXXXX:bob"},
                "DateLessThan": {"aws:TokenIssueTime": "2026-11-12T14:35:08Z"},
            },
        }],
    }
    # a session started while the detach propagated is cut; one a minute after that is not
    assert denied(result.document, f"{ROLE}:bob", t(14, 30, 9))
    assert not denied(result.document, f"{ROLE}:bob", t(14, 36, 8))


def test_grant_end_never_passes_the_expiry():
    assert grant_end(t(16, 0), detached_at=t(15, 58)) == t(16, 0)
    assert grant_end(t(16, 0)) == t(16, 0)


def test_empty_document_denies_nothing_and_is_read_back_as_empty():
    doc = merge(None, [], now=t(12, 0)).document
    assert doc == {"Version": "2012-10-17", "Statement": [EMPTY_STATEMENT]}
    assert not denied(doc, f"{ROLE}:alice", datetime(1999, 1, 1, tzinfo=timezone.utc))
    assert parse(doc) == ([], [])
    assert merge(doc, [], now=t(12, 0)).changed is False


# -- who is cut -------------------------------------------------------------------------------


def test_only_that_persons_sessions_before_the_end_are_cut():
    doc = merge(None, [CutOff(ROLE, "alice", t(16, 0), "r1")], now=t(16, 0, 5)).document
    assert denied(doc, f"{ROLE}:alice", t(15, 30))
    assert denied(doc, f"{ROLE}:alice", t(16, 0))            # the end's own second
    assert not denied(doc, f"{ROLE}:alice", t(16, 0, 1))     # a later grant's session
    assert not denied(doc, f"{ROLE}:alice2", t(15, 30))      # a name that starts the same
    assert not denied(doc, f"{ROLE}:bob", t(15, 30))         # someone else on the role
    assert not denied(doc, f"{OTHER_ROLE}:alice", t(15, 30))  # the same person on another role


def test_other_peoples_entries_are_untouched():
    first = merge(None, [CutOff(ROLE, "alice", t(15, 0), "r1"), CutOff(ROLE, "carol", t(15, 10), "r3")],
                  now=t(15, 20))
    second = merge(first.document, [CutOff(ROLE, "bob", t(15, 30), "r2")], now=t(15, 31))
    before = {s["Sid"]: s for s in first.document["Statement"]}
    after = {s["Sid"]: s for s in second.document["Statement"]}
    assert before.items() <= after.items()
    assert set(after) - set(before) == {"Cutr2"}


def test_rounding_the_end_up_to_the_next_second():
    assert bound_of(t(16, 2, 15)) == t(16, 2, 16)
    assert bound_of(t(16, 2, 15, 1)) == t(16, 2, 16)
    assert bound_of(t(16, 2, 15, 999_999)) == t(16, 2, 16)
    stmt = cutoff_statement(CutOff(ROLE, "alice", t(16, 2, 15, 400_000), "r1"))
    assert stmt["Condition"]["DateLessThan"] == {"aws:TokenIssueTime": "2026-11-12T16:02:16Z"}
    doc = document([stmt])
    assert denied(doc, f"{ROLE}:alice", t(16, 2, 15, 900_000))  # issued in the end's second
    assert not denied(doc, f"{ROLE}:alice", t(16, 2, 16))


@pytest.mark.parametrize("request_id", ["req-20261112-0a11ce", "r_1.2/3", "ÄöÜ-ok-9", ""])
def test_sids_are_alphanumeric(request_id):
    sid = cutoff_statement(CutOff(ROLE, "alice.b+c@d", t(16, 0), request_id))["Sid"]
    assert re.fullmatch(r"[A-Za-z0-9]+", sid) and sid.startswith("Cut")
    assert statement_id(request_id) == sid or request_id == ""


def test_sids_stay_unique_when_request_ids_differ_only_in_punctuation():
    doc = merge(None, [CutOff(ROLE, "alice", t(15, 0), "r-1"), CutOff(ROLE, "bob", t(15, 1), "r1")],
                now=t(15, 2)).document
    sids = [s["Sid"] for s in doc["Statement"]]
    assert sids == ["Cutr1", "Cutr1N2"]
    assert all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids)
    # nor may a request id take the role-wide statement's Sid
    cuts = [CutOff(ROLE, f"user{i:02d}", t(15, i), "RoleWide") for i in range(40)]
    sids = [s["Sid"] for s in merge(None, cuts, now=t(15, 45)).document["Statement"]]
    assert sids[0] == "CutRoleWide" and len(set(sids)) == len(sids)


@pytest.mark.parametrize("role_id, session", [("", "alice"), ("aroa", "alice"), (ROLE, "ali*ce"),
                                              (ROLE, "ali?"), (ROLE, ""), (ROLE, "a:b")])
def test_refuses_what_could_match_someone_else(role_id, session):
    with pytest.raises(ValueError):
        CutOff(role_id, session, t(16, 0))


# -- merging ------------------------------------------------------------------------------------


def test_idempotent():
    cut = CutOff(ROLE, "alice", t(16, 0, 0, 300_000), "req-1")
    first = merge(None, [cut], now=t(16, 1))
    twice = merge(None, [cut, cut], now=t(16, 1))
    again = merge(first.document, [cut], now=t(16, 2))
    assert twice.document == first.document
    assert again.document == first.document and again.changed is False
    assert merge(again.document, [], now=t(16, 3)).changed is False


def test_the_later_end_wins_for_the_same_person():
    early, late = CutOff(ROLE, "alice", t(15, 0), "r1"), CutOff(ROLE, "alice", t(16, 0), "r2")
    for order in ([early, late], [late, early]):
        result = merge(None, order, now=t(16, 1))
        assert [s["Sid"] for s in result.document["Statement"]] == ["Cutr2"]
        assert result.kept == (late,)
    stepwise = merge(merge(None, [late], now=t(16, 1)).document, [early], now=t(16, 2))
    assert stepwise.changed is False
    assert denied(stepwise.document, f"{ROLE}:alice", t(14, 59))


def test_dead_cut_offs_are_pruned_after_max_session():
    cut = CutOff(ROLE, "alice", t(15, 0), "r1")
    doc = merge(None, [cut], now=t(15, 1)).document
    still = merge(doc, [], now=t(16, 0, 0))  # a session issued at 15:00:00.9 lives until 16:00:00.9
    assert still.changed is False and still.pruned == ()
    gone = merge(doc, [], now=t(16, 0, 1))
    assert gone.changed is True
    assert gone.document["Statement"] == [EMPTY_STATEMENT]
    assert [c.session_name for c in gone.pruned] == ["alice"] and gone.kept == ()
    # a cut-off that arrives already dead writes nothing
    late = merge(None, [CutOff(ROLE, "bob", t(10, 0), "r2")], now=t(12, 0))
    assert late.document["Statement"] == [EMPTY_STATEMENT] and len(late.pruned) == 1


def test_unreadable_statements_are_dropped_and_reported():
    foreign = {"Sid": "Hand", "Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    mangled = dict(cutoff_statement(CutOff(ROLE, "alice", t(15, 0), "r1")),
                   Condition={"DateLessThan": {"aws:TokenIssueTime": "soon"}})
    good = cutoff_statement(CutOff(ROLE, "bob", t(15, 0), "r2"))
    result = merge({"Version": "2012-10-17", "Statement": [foreign, mangled, good]}, [], now=t(15, 5))
    assert result.unreadable == (foreign, mangled)
    assert result.document["Statement"] == [good] and result.changed


def test_people_sharing_an_end_second_share_a_statement_when_over_budget():
    cuts = [CutOff(ROLE, f"user{i:02d}", t(15, 0, 0, i * 1000), f"r{i}") for i in range(3)]
    roomy = merge(None, cuts, now=t(15, 1))
    assert len(roomy.document["Statement"]) == 3
    tight = merge(None, cuts, now=t(15, 1), budget=iam_size(roomy.document) - 1)
    assert tight.document["Statement"] == [shared_statement(cuts)]
    assert tight.document["Statement"][0]["Sid"] == "CutAt20261112T150001Z"
    assert tight.fallback is False and set(tight.kept) == set(cuts)
    for c in cuts:
        assert denied(tight.document, c.userid, t(14, 30))
    assert not denied(tight.document, f"{ROLE}:user99", t(14, 30))
    # read back and merged again: the same document
    assert merge(tight.document, [], now=t(15, 2), budget=iam_size(roomy.document) - 1).changed is False


def test_over_budget_falls_back_to_a_role_wide_cut_off():
    cuts = [CutOff(ROLE, f"user{i:02d}", t(15, i), f"r{i}") for i in range(40)]
    result = merge(None, cuts, now=t(15, 45))
    assert result.fallback is True
    assert iam_size(result.document) <= MANAGED_POLICY_MAX_CHARS
    wide = result.document["Statement"][0]
    end = max(c.end for c in result.folded)
    assert wide == {
        "Sid": "CutRoleWide",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringLike": {"aws:userid": "AROAXXXXXXXXXXXXXXXXX:*"},
            "DateLessThan": {"aws:TokenIssueTime": "2026-11-12T15:09:01Z"},
        },
    }
    assert end == t(15, 9)
    # the earliest ends were folded; the rest keep their own statements
    assert [c.session_name for c in result.folded] == [f"user{i:02d}" for i in range(10)]
    assert len(result.document["Statement"]) == 1 + 30
    assert set(result.kept) == set(cuts)
    # everyone's sessions issued before the fallback end are cut, the folded people's included
    assert denied(result.document, f"{ROLE}:user00", t(14, 59))
    assert denied(result.document, f"{ROLE}:user09", t(15, 9))
    assert denied(result.document, f"{ROLE}:someone-else", t(15, 9))
    assert not denied(result.document, f"{ROLE}:someone-else", t(15, 9, 1))
    assert not denied(result.document, f"{ROLE}:user00", t(15, 9, 1))  # a later grant works
    assert not denied(result.document, f"{OTHER_ROLE}:someone-else", t(15, 0))
    # kept while live, not reported again, and gone when dead
    again = merge(result.document, [], now=t(15, 46))
    assert (again.changed, again.fallback, len(again.role_wide)) == (False, False, 1)
    later = merge(result.document, [], now=t(16, 9, 1))
    assert later.role_wide == () and not any(s["Sid"] == "CutRoleWide" for s in later.document["Statement"])


def test_role_wide_statement_form():
    assert role_wide_statement([OTHER_ROLE, ROLE, ROLE], t(9, 0, 0, 5)) == {
        "Sid": "CutRoleWide",
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringLike": {"aws:userid": ["AROAXXXXXXXXXXXXXXXXX:*", "AROAYYYYYYYYYYYYYYYYY:*"]},
            "DateLessThan": {"aws:TokenIssueTime": "2026-11-12T09:00:01Z"},
        },
    }


def test_a_budget_too_small_for_anything_is_an_error():
    with pytest.raises(ValueError):
        merge(None, [CutOff(ROLE, "alice", t(15, 0), "r1")], now=t(15, 1), budget=100)


def test_measured_sizes():
    """The figures in chalicelib/cutoff.py's docstring."""
    end = t(16, 2, 15)
    names = [f"u{i:011d}" for i in range(400)]  # 12 characters, like alice.smith1
    assert iam_size({"Version": "2012-10-17", "Statement": []}) == 39
    assert iam_size(cutoff_statement(CutOff(ROLE, "alice.smith1", end, "req-20261112-0a11ce"))) == 216
    assert iam_size(shared_statement([CutOff(ROLE, n, end) for n in names[:2]])) == 256
    assert iam_size(shared_statement([CutOff(ROLE, n, end) for n in names[:3]])) == 293
    assert iam_size(role_wide_statement([ROLE], end)) == 194

    def fits(per_second: int) -> int:
        """How many people fit with ``per_second`` of them ending in each second."""
        cuts = [CutOff(ROLE, n, end + timedelta(seconds=i // per_second), f"req-20261112-{i:06x}")
                for i, n in enumerate(names)]
        lo, hi = 0, len(cuts)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if merge(None, cuts[:mid], now=end).fallback:
                hi = mid - 1
            else:
                lo = mid
        return lo

    assert fits(1) == 28
    assert fits(2) == 46
    assert fits(5) == 81  # 16 seconds of 5, and one more alone
    assert fits(400) == 160


# -- property: nothing live is ever lost, and the budget holds ----------------------------------

PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
START = t(12, 0)

_cut = st.builds(
    lambda person, role, offset_ms: CutOff(role, person, START + timedelta(milliseconds=offset_ms),
                                           f"req-{person}-{offset_ms}"),
    st.sampled_from(PEOPLE), st.sampled_from([ROLE, ROLE, OTHER_ROLE]),
    st.one_of(st.integers(min_value=0, max_value=4 * 3600 * 1000),
              st.integers(min_value=0, max_value=5).map(lambda s: s * 1000 + 250)),  # shared seconds
)
_step = st.tuples(st.lists(_cut, max_size=6), st.integers(min_value=0, max_value=40 * 60))


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(_step, min_size=1, max_size=12),
       budget=st.sampled_from([700, 1200, 2000, MANAGED_POLICY_MAX_CHARS]))
def test_every_live_cut_off_stays_represented(steps, budget):
    doc, now, given_so_far = None, START, []
    for new, advance in steps:
        now += timedelta(seconds=advance)
        result = merge(doc, new, now=now, budget=budget)
        assert iam_size(result.document) <= budget
        assert result.unreadable == ()
        sids = [s["Sid"] for s in result.document["Statement"]]
        assert len(set(sids)) == len(sids) and all(re.fullmatch(r"[A-Za-z0-9]+", s) for s in sids)
        assert merge(result.document, new, now=now, budget=budget).changed is False  # idempotent
        doc = result.document
        given_so_far += new
        for c in given_so_far:
            if c.bound + MAX_SESSION <= now:
                continue  # dead: every session it targets has expired
            # its person's sessions issued before its end, still alive now, are denied
            oldest_alive = max(c.end - MAX_SESSION, now - MAX_SESSION)
            for issued in (c.end, c.end.replace(microsecond=0), oldest_alive + timedelta(seconds=1)):
                if issued <= c.end:
                    assert denied(doc, c.userid, issued), (c, issued, doc)
        # without a role-wide cut-off nobody else is touched, and a person's later sessions work
        wide = max((w.bound for w in result.role_wide), default=None)
        for person in PEOPLE:
            for role in (ROLE, OTHER_ROLE):
                userid = f"{role}:{person}"
                mine = [c.bound for c in given_so_far if c.userid == userid]
                after = max(mine + ([wide] if wide else []), default=now - timedelta(hours=5))
                assert not denied(doc, userid, after), (userid, after, doc)
