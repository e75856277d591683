"""What cutting off an ended grant's sessions costs AWS, counted on the real IamSessionCuts
on moto (the table and the bastion's IAM are the in-memory fakes, which make no AWS calls):
a fixed number of calls per cut, the revoker assumed once per member account while its
credentials last, and nothing at all for a cut that is already in force."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from chalicelib.adapters.session_cuts import IamSessionCuts
from chalicelib.usecases import jobs
from tests.adapters.test_session_cuts import MEMBER, REVOKER, Sessions, member_account
from tests.fakes import make_service
from tests.service.helpers import granted, slash

#: one cut: GetRole (the role id), GetPolicy + GetPolicyVersion (read), ListPolicyVersions
#: (room for the new version), CreatePolicyVersion, GetPolicy + GetPolicyVersion (read back)
CUT_CALLS = Counter({"iam.GetRole": 1, "iam.GetPolicy": 2, "iam.GetPolicyVersion": 2,
                     "iam.ListPolicyVersions": 1, "iam.CreatePolicyVersion": 1})


def counted_service(moto):
    member_account(MEMBER)
    sessions = Sessions()
    calls: Counter = Counter()
    sessions.session.events.register(
        "before-call", lambda event_name, **_: calls.update([event_name.split(".", 1)[1]]))
    return make_service(cuts=IamSessionCuts(sessions, REVOKER)), calls


def test_one_expiry_costs_a_fixed_handful_of_calls(aws_env):
    from moto import mock_aws

    with mock_aws():
        svc, calls = counted_service(None)
        rid = granted(svc)
        svc.clock.set(svc.store.get(rid).expires_at + timedelta(seconds=20))
        svc.sweep()
        assert svc.store.get(rid).sessions_cut_at is not None
        assert calls == CUT_CALLS + Counter({"sts.AssumeRole": 1})

        # the next cut in the same account (within the credentials' life) assumes nothing more
        calls.clear()
        second = granted(svc)
        svc.clock.advance(minutes=5)
        svc.run_all(slash(svc, "alice", f"revoke {second}").jobs)
        assert calls == CUT_CALLS + Counter({"iam.DeletePolicyVersion": 0})

        # a cut already in force: read, merged, nothing written
        calls.clear()
        svc.run_all([jobs.CutSessions(second)])  # recorded: not even read
        assert calls == Counter()
