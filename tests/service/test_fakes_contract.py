"""The fakes are held to the real adapters: the SAME assertions run against InMemoryStore
and FakeGrants (tests/fakes.py) and against DynamoStore and IamGrants
(chalicelib/adapters/) on moto in-process, for every behaviour the use cases rely on.
The moto runs are marked ``moto`` (``-m "not moto"`` skips them; they are the slow part
of tests/service). IAM's DeleteConflict, which moto does not model, is added to moto's
client here the way tests/adapters/test_iam_grants.py does it.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain import errors
from chalicelib.domain.errors import Conflict, GrantLimitReached
from chalicelib.domain.model import Principal, Request
from tests.fakes import T0, FakeGrants, InMemoryStore

_tables = itertools.count(1)


@pytest.fixture(scope="module")
def moto():
    """One in-process moto for the module: each store test gets its own table, each
    grants test its own AWS account (so its own IAM)."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID"):
            mp.delenv(var, raising=False)
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLESEED00001")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "seed")
        with mock_aws():
            yield


@pytest.fixture(params=["memory", pytest.param("dynamo", marks=pytest.mark.moto)])
def store(request):
    if request.param == "memory":
        return InMemoryStore()
    from chalicelib.adapters.store import DynamoStore, create_table_from_template
    from local.seed import TABLE_TEMPLATE

    from local.seed import client as aws

    request.getfixturevalue("moto")
    client = aws("dynamodb")
    table = f"contract-{next(_tables)}"
    create_table_from_template(client, table, str(TABLE_TEMPLATE))
    return DynamoStore(client, table)


# --------------------------------------------------------------------------- records


def new(rid: str, person: str = "alice", at: datetime = T0, role: str = "admin",
        pending: timedelta = timedelta(hours=1)):
    return Request.requested(
        at, request_id=rid, requester=person, requester_slack="U0" + person.upper()[:8],
        principal=Principal.iam_user(person),
        account="prod", account_id="222222222222", role=role, role_arn=f"arn:aws:iam::222222222222:role/{role}",
        production=True, duration_seconds=7200, approvals_required=1, pending_until=at + pending, reason="r")


def approve(at):
    return lambda r: r.approve(at, "bob")


def grant(r):
    arn = f"arn:aws:iam::111111111111:policy/drawbridge/drawbridge-{r.request_id}"
    return r.granted(r.decided_at + timedelta(seconds=1), arn)


def revoke(at):
    return lambda r: r.revoke(at, "alice")


def revoked(r):
    return r.revoked(r.ended_at + timedelta(seconds=2))


def stored(store, rid: str, *moves, **kwargs) -> Request:
    """Create a request and make ``moves`` (functions of the record) through the store."""
    req, event = new(rid, **kwargs)
    store.create(req, event)
    for move in moves:
        after, event = move(req)
        store.transition(req, after, event)
        req = after
    return req


def ids(reqs) -> list[str]:
    return [r.request_id for r in reqs]


def at(hh: int, mm: int, ss: int = 0, us: int = 0) -> datetime:
    return datetime(2026, 11, 12, hh, mm, ss, us, tzinfo=timezone.utc)


# --------------------------------------------------------------------------- requests


def test_create_refuses_an_id_that_exists(store):
    first = stored(store, "req-20261112-000001")
    other, event = new("req-20261112-000001", person="dave")
    with pytest.raises(Conflict):
        store.create(other, event)
    assert store.get("req-20261112-000001") == first
    assert [e.actor for e in store.history("req-20261112-000001")] == ["alice"]


def test_get_and_history_of_nothing(store):
    assert store.get("req-20261112-ffffff") is None
    assert store.history("req-20261112-ffffff") == []


def test_transition_is_conditional_on_the_version_read(store):
    req = stored(store, "req-20261112-000001")
    after, event = req.approve(at(14, 2), "bob")
    store.transition(req, after, event)

    stale, stale_event = req.deny(at(14, 2, 1), "carol")  # decided on version 1, which is gone
    with pytest.raises(Conflict):
        store.transition(req, stale, stale_event)

    assert store.get(req.request_id) == after
    history = store.history(req.request_id)
    assert [(e.seq, e.action) for e in history] == [(1, "requested"), (2, "approved")]
    assert history[-1] == event


def test_transition_checks_the_version_itself(store):
    req = stored(store, "req-20261112-000001")
    imagined = req.change()  # a version the store never had: its event (seq 3) is new, the version check alone refuses
    after, event = imagined.approve(at(14, 2), "bob")
    with pytest.raises(Conflict):
        store.transition(imagined, after, event)
    assert store.get(req.request_id) == req and len(store.history(req.request_id)) == 1


def test_transition_of_a_missing_record_conflicts(store):
    req, _ = new("req-20261112-000009")
    after, event = req.approve(at(14, 2), "bob")
    with pytest.raises(Conflict):
        store.transition(req, after, event)
    assert store.get(req.request_id) is None and store.history(req.request_id) == []


def test_transition_must_bump_the_version_by_one(store):
    req = stored(store, "req-20261112-000001")
    after, event = req.approve(at(14, 2), "bob")
    with pytest.raises(ValueError):
        store.transition(req, after.change(), event)
    assert store.get(req.request_id) == req


def test_open_for_is_one_persons_pending_and_live_requests_oldest_first(store):
    late = stored(store, "req-20261112-000001", at=at(14, 5))
    active = stored(store, "req-20261112-000002", approve(at(14, 2)), grant, at=at(14, 1), role="readonly")
    stored(store, "req-20261112-000003", lambda r: r.deny(at(14, 2), "bob"), at=at(14, 0))
    stored(store, "req-20261112-000004", approve(at(14, 2)), grant, revoke(at(14, 3)), revoked, at=at(14, 0))
    revoking = stored(store, "req-20261112-000005", approve(at(14, 2)), grant, revoke(at(14, 3)), at=at(14, 3))
    granting = stored(store, "req-20261112-000006", approve(at(14, 2)), at=at(13, 59))
    daves = stored(store, "req-20261112-000007", person="dave")

    assert store.open_for("alice") == [granting, active, revoking, late]
    assert store.open_for("dave") == [daves]
    assert store.open_for("bob") == []


def test_due_is_oldest_first_up_to_now_and_limited(store):
    p1 = stored(store, "req-20261112-000001", at=at(14, 0))  # due 15:00 (pending_until)
    p2 = stored(store, "req-20261112-000002", at=at(13, 30))  # due 14:30
    g = stored(store, "req-20261112-000003", approve(at(14, 2)), at=at(14, 0))  # GRANTING: due 14:04
    a = stored(store, "req-20261112-000004", approve(at(14, 2)), grant, at=at(14, 0))  # ACTIVE: due 16:02
    r = stored(store, "req-20261112-000005", approve(at(14, 2)), grant, revoke(at(14, 10)), at=at(14, 0))  # 14:11
    stored(store, "req-20261112-000006", approve(at(14, 2)), grant, revoke(at(14, 10)), revoked)  # ended
    stored(store, "req-20261112-000007", lambda x: x.deny(at(14, 1), "bob"))  # ended

    assert store.due(at(14, 3, 59)) == []
    assert store.due(at(14, 4)) == [g]
    assert store.due(at(14, 45)) == [g, r, p2]
    assert store.due(at(17, 0)) == [g, r, p2, p1, a]
    assert store.due(at(17, 0), limit=2) == [g, r]


def test_due_compares_whole_seconds_as_the_index_does(store):
    # The index key is the due time to the second (iso_z): a request due at 14:30:00.4
    # is returned by a query at 14:30:00.0 (and the sweep then finds it not quite due).
    req = stored(store, "req-20261112-000001", at=at(13, 30, 0, 400000))
    assert store.due(at(14, 29, 59, 999999)) == []
    assert store.due(at(14, 30)) == [req]


def test_live_is_every_request_the_sweep_tracks_in_due_order(store):
    p = stored(store, "req-20261112-000001", at=at(14, 0))  # 15:00
    g = stored(store, "req-20261112-000002", approve(at(14, 2)))  # 14:04
    a = stored(store, "req-20261112-000003", approve(at(14, 2)), grant)  # 16:02
    stored(store, "req-20261112-000004", lambda x: x.cancel(at(14, 1), "alice"))
    stored(store, "req-20261112-000005", lambda x: x.expire_pending(at(15, 0)))
    stored(store, "req-20261112-000006", approve(at(14, 2)), grant, lambda x: x.expire_grant(at(16, 2)))
    assert store.live() == [g, p, a]


def test_the_verify_cursor_moves_only_from_the_version_it_was_read_at(store):
    """Reconcile's rotation: two sweeps that read the same cursor cannot both move it (the
    loser's slice was verified anyway; it only must not move the cursor past the winner's)."""
    assert store.verify_cursor() == ("", 0)
    assert store.move_verify_cursor("req-20261112-000005", 0) is True
    assert store.verify_cursor() == ("req-20261112-000005", 1)
    assert store.move_verify_cursor("req-20261112-000009", 0) is False  # read before the move above
    assert store.verify_cursor() == ("req-20261112-000005", 1)
    assert store.move_verify_cursor("req-20261112-000001", 1) is True  # wrapping round is a move too
    assert store.verify_cursor() == ("req-20261112-000001", 2)
    assert store.live() == [] and store.due(at(23, 59)) == []  # not a request: in no index


def test_grants_ending_after_follows_the_usable_window(store):
    active = stored(store, "req-20261112-000001", approve(at(14, 2)), grant)  # until 16:02
    early_end = stored(store, "req-20261112-000002", approve(at(14, 2)), grant, revoke(at(14, 10)), revoked,
                       role="readonly")  # ended 14:10
    revoking = stored(store, "req-20261112-000003", approve(at(14, 2)), grant, revoke(at(14, 20)),
                      role="other")  # ends 14:20 (REVOKING counts from when it was asked)
    stored(store, "req-20261112-000004")  # pending: no window
    stored(store, "req-20261112-000005", approve(at(14, 2)))  # granting: no window yet
    daves = stored(store, "req-20261112-000006", approve(at(14, 2)), grant, person="dave")

    alice = Principal.iam_user("alice")
    assert store.grants_ending_after(alice, at(14, 5)) == [early_end, revoking, active]
    assert store.grants_ending_after(alice, at(14, 10)) == [early_end, revoking, active]  # the end is inclusive
    assert store.grants_ending_after(alice, at(14, 10, 1)) == [revoking, active]
    assert store.grants_ending_after(alice, at(16, 3)) == []
    assert store.grants_ending_after(Principal.iam_user("dave"), at(14, 0)) == [daves]
    assert store.grants_ending_after(Principal.iam_user("bob"), at(14, 0)) == []


# --------------------------------------------------------------------------- claims


def test_the_card_is_saved_once(store):
    assert store.card("req-20261112-000001") is None
    assert store.save_card("req-20261112-000001", "C0APPROVE1", "1.1") is True
    assert store.save_card("req-20261112-000001", "C0OTHER", "2.2") is False
    assert store.card("req-20261112-000001") == ("C0APPROVE1", "1.1")


def test_message_deliveries(store):
    """At most one post per message: the first attempt starts it, later ones see it (and
    where it landed, once known)."""
    first = store.begin_delivery("req-20261112-000001", "dm:access_granted", T0)
    assert (first.first, first.ts) == (True, None)
    again = store.begin_delivery("req-20261112-000001", "dm:access_granted", T0 + timedelta(minutes=1))
    assert (again.first, again.started_at, again.ts) == (False, T0, None)
    assert store.begin_delivery("req-20261112-000001", "dm:access_revoked", T0).first is True
    assert store.delivery("req-20261112-000002", "dm:access_granted") is None
    store.finish_delivery("req-20261112-000001", "dm:access_granted", "D0ALICE001", "1.1")
    done = store.delivery("req-20261112-000001", "dm:access_granted")
    assert (done.channel, done.ts) == ("D0ALICE001", "1.1")


def test_the_outbox(store):
    """What a change owes is written with it; settling needs the version that owed it or later."""
    req, event = new("req-20261112-000001")
    store.create(req, event, owed=[("card", {"job": "card", "request_id": req.request_id})])
    (owed,) = store.owed_due(T0 + timedelta(minutes=1))
    assert (owed.request_id, owed.key, owed.version, owed.attempts) == (req.request_id, "card", 1, 0)
    assert [o.key for o in store.owed_for(req.requester)] == ["card"]
    assert store.owed_due(T0) == []  # not before its first retry time
    store.retry_later(owed, T0 + timedelta(minutes=5))
    assert store.owed_due(T0 + timedelta(minutes=2)) == []
    assert store.owed_due(T0 + timedelta(minutes=5))[0].attempts == 1
    store.settle(req.request_id, "card", 0)  # an older delivery does not settle it
    assert len(store.owed_for(req.requester)) == 1
    store.settle(req.request_id, "card", 1)
    assert store.owed_for(req.requester) == [] and store.open_for(req.requester) == [req]


def test_alert_claims(store):
    record = {"kind": "covered", "request_id": "req-20261112-000001", "mfa": True, "n": 1}
    assert store.alert("shared-1") is None
    assert store.claim_alert("shared-1", record, T0) is True
    assert store.claim_alert("shared-1", {"kind": "other"}, T0) is False
    assert store.alert("shared-1") == record
    store.release_alert("shared-1")
    assert store.alert("shared-1") is None
    assert store.claim_alert("shared-1", {"kind": "again"}, T0) is True
    assert store.alert("shared-1") == {"kind": "again"}


def test_delivery_claims(store):
    assert store.first_delivery("cmd#1", T0) == (True, None)
    assert store.first_delivery("cmd#1", T0) == (False, None)
    assert store.first_delivery("cmd#2", T0) == (True, None)


def test_a_claim_rides_on_the_write_and_a_repeat_changes_nothing(store):
    req, event = new("req-20261112-000001")
    store.create(req, event, claim="cmd#7")
    assert store.first_delivery("cmd#7", T0) == (False, "req-20261112-000001")  # claimed by the write

    twin, twin_event = new("req-20261112-000002")
    with pytest.raises(errors.AlreadyDelivered):  # the same delivery again: refused as a whole
        store.create(twin, twin_event, claim="cmd#7")
    assert store.get("req-20261112-000002") is None and store.history("req-20261112-000002") == []

    after, move = approve(T0)(req)
    with pytest.raises(errors.AlreadyDelivered):
        store.transition(req, after, move, claim="cmd#7")
    assert store.get(req.request_id) == req  # unchanged: version 1, no approval
    store.transition(req, after, move, claim="click#8")
    assert store.first_delivery("click#8", T0) == (False, req.request_id)


def test_the_reads_a_command_makes_recognise_its_repeat(store):
    req, event = new("req-20261112-000001")
    store.create(req, event, claim="cmd#7")
    with pytest.raises(errors.AlreadyDelivered):
        store.open_for("alice", claim="cmd#7")
    with pytest.raises(errors.AlreadyDelivered):
        store.get(req.request_id, claim="cmd#7")
    assert ids(store.open_for("alice", claim="cmd#other")) == [req.request_id]
    assert store.get(req.request_id, claim="cmd#other") == req
    after, move = approve(T0)(req)
    store.transition(req, after, move)  # a later version, written by no delivery
    assert store.get(req.request_id, claim="cmd#7") == after  # the repeat no longer matches: decided afresh


def test_a_call_is_claimed_once_and_recorded_as_a_use(store):
    rid = "req-20261112-000001"
    claim = lambda key, owner, token, **kw: store.claim_call(key, owner, {"event_id": owner, **kw.pop("doc", {})},
                                                             T0, token=token, **kw)
    assert claim("s-3", "e-3", "t1", use=(rid, "2026-11-12T14:20:33Z#e-3")).state == "first"
    assert claim("s-1", "e-1", "t2", use=(rid, "2026-11-12T14:03:07Z#e-1")).state == "first"
    assert claim("s-1", "e-1", "t2").state == "first"  # our own put, its answer lost and retried
    again = claim("s-1", "e-1", "t3", doc={"again": True})
    assert (again.state, again.attempt_at, again.digest) == ("again", T0, None)
    assert claim("s-1", "e-1b", "t4").state == "taken"  # the other copy of the call
    assert claim("s-9", "e-9", "t5", use=("req-20261112-000002", "2026-11-12T14:05:00Z#e-9")).state == "first"
    assert store.uses(rid) == [{"event_id": "e-1"}, {"event_id": "e-3"}]
    assert store.uses("req-20261112-ffffff") == [] and store.alert("s-1") == {"event_id": "e-1"}
    store.call_failed("s-1", "e-1b")  # not the owner: no effect
    assert claim("s-1", "e-1", "t6").attempt_at == T0
    store.call_failed("s-1", "e-1")
    assert claim("s-1", "e-1", "t7").attempt_at is None  # known to have failed: not in flight


def test_a_call_moves_into_a_digest_once(store):
    assert store.claim_call("s-1", "e-1", {}, T0, token="t", digest=None).state == "first"
    assert store.put_call_in_digest("s-1", "e-other", "d-1") is False
    assert store.put_call_in_digest("s-1", "e-1", "d-1") is True
    assert store.put_call_in_digest("s-1", "e-1", "d-2") is False  # already in one
    assert store.put_call_in_digest("s-1", "e-1", "d-2", instead_of="d-1") is True  # a roll-over
    assert store.call("s-1")["digest"] == "d-2"
    assert store.claim_call("s-1", "e-1", {}, T0, token="u").digest == "d-2"


def test_context_grants_first_uses_and_open_digests(store):
    from chalicelib.ports import DigestJoin

    store.create(*new("req-20261112-000001"))
    assert store.first_use("req-20261112-000001", "alice", at(16, 2, 15), T0) is True
    assert store.first_use("req-20261112-000001", "alice", at(16, 2, 15), T0) is False
    j = DigestJoin(key="20261112T1400Z#quiet#ab#0", member="s-1", principal="alice", loud=False, channel="C1",
                   open_until=at(14, 1), cap=2, event_time=at(13, 59, 50), request_id="req-20261112-000001",
                   grant='{"where": "prod / admin"}')
    store.join_digest(j, T0)
    ctx = store.alert_context("alice", at(14, 0))
    assert ctx.used == frozenset({"req-20261112-000001"})
    assert [d["key"] for d in ctx.digests] == [j.key] and ctx.digests[0]["members"] == 1
    assert store.alert_context("bob", at(14, 0)).digests == []
    assert store.alert_context("alice", at(14, 1, 1)).digests == []  # closed before that event


def test_a_digest_counts_each_member_once_up_to_its_cap(store):
    from datetime import timedelta

    from chalicelib.ports import DigestJoin

    base = DigestJoin(key="k", member="s-1", principal="alice", loud=True, channel="C1", open_until=at(14, 1),
                      cap=2, event_time=at(14, 0, 1), line='{"event_id": "e-1"}', not_before=at(14, 0, 3))
    first = store.join_digest(base, T0)
    assert (first["members"], first["shown"], first["lines"], first["loud"]) == (1, 0, [{"event_id": "e-1"}], True)
    assert store.join_digest(base, T0)["members"] == 1  # joining again changes nothing
    two = store.join_digest(DigestJoin(**{**base.__dict__, "member": "s-2", "line": '{"event_id": "e-2"}'}), T0)
    assert two["members"] == 2 and two["member_keys"] == ["s-1", "s-2"]
    assert store.join_digest(DigestJoin(**{**base.__dict__, "member": "s-3"}), T0) is None  # full
    assert store.take_digest("k", "tok", T0, timedelta(seconds=60)) is None  # not before 14:00:03
    taken = store.take_digest("k", "tok", at(14, 0, 3), timedelta(seconds=60))
    assert taken["members"] == 2 and taken["dirty"] is False
    assert store.take_digest("k", "other", at(14, 0, 4), timedelta(seconds=60)) is None  # leased
    assert store.release_digest("k", "other", next_at=at(14, 0, 5)) is False
    assert store.release_digest("k", "tok", next_at=at(14, 0, 5), shown=2, where=("C1", "1.2")) is True
    d = store.alert_digest("k")
    assert (d["shown"], d["ts"], d["post_channel"], d["next_at"], d["dirty"]) == (2, "1.2", "C1", "2026-11-12T14:00:05Z", False)
    assert store.take_digest("k", "tok", at(14, 0, 9), timedelta(seconds=60)) is None  # nothing new
    assert store.digests_due(at(14, 0, 9)) == ["k"]
    assert store.stop_tracking_digest("k", 1) is False and store.stop_tracking_digest("k", 2) is True
    assert store.digests_due(at(14, 0, 9)) == []


# --------------------------------------------------------------------------- grants

DOC = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                               "Resource": "arn:aws:iam::222222222222:role/admin"}]}
ALICE, DAVE = Principal.iam_user("alice"), Principal.iam_user("dave")
_accounts = itertools.count(900000000001)


class RealIam:
    """IamGrants on a fresh moto account, plus what people do by hand in the IAM console."""

    def __init__(self, account: str, max_attached: int):
        from botocore.exceptions import ClientError

        from chalicelib.adapters.iam import IamGrants
        from local.seed import client as aws

        self.account = account
        self.iam = aws("iam", account_id=account)
        for user in ("alice", "dave"):
            self.iam.create_user(UserName=user)

        def refuse_if_attached(params, **_):  # real IAM: DeleteConflict (moto deletes it)
            if self.iam.get_policy(PolicyArn=params["PolicyArn"])["Policy"]["AttachmentCount"]:
                raise ClientError({"Error": {"Code": "DeleteConflict", "Message": "attached"}}, "DeletePolicy")
        self.iam.meta.events.register("provide-client-params.iam.DeletePolicy", refuse_if_attached)
        self.grants = IamGrants(self.iam, account, max_attached=max_attached)

    def stage(self, path: str):
        """The grants port of another installation (stage) in the same account."""
        from chalicelib.adapters.iam import IamGrants

        return IamGrants(self.iam, self.account, path=path)

    def create_policy(self, name: str, path: str, users=()) -> str:
        arn = self.iam.create_policy(PolicyName=name, Path=path, PolicyDocument=json.dumps(DOC))["Policy"]["Arn"]
        for user in users:
            self.attach(arn, user)
        return arn

    def attach(self, arn: str, user: str) -> None:
        self.iam.attach_user_policy(UserName=user, PolicyArn=arn)

    def attached(self, user: str) -> list[str]:
        return sorted(p["PolicyArn"] for p in self.iam.list_attached_user_policies(UserName=user)["AttachedPolicies"])

    def exists(self, arn: str) -> bool:
        return any(p["Arn"] == arn for p in self.iam.list_policies(Scope="Local")["Policies"])

    def document(self, arn: str) -> dict:
        version = self.iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
        doc = self.iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
        return json.loads(doc) if isinstance(doc, str) else doc

    def add_mfa(self, user: str) -> str:
        serial = self.iam.create_virtual_mfa_device(VirtualMFADeviceName=user)["VirtualMFADevice"]["SerialNumber"]
        self.iam.enable_mfa_device(UserName=user, SerialNumber=serial, AuthenticationCode1="123456",
                                   AuthenticationCode2="654321")
        return serial


class FakeIam:
    """The same, on FakeGrants."""

    def __init__(self, account: str, max_attached: int):
        self.account = account
        self.grants = FakeGrants(account, max_attached=max_attached)

    def stage(self, path: str):
        other = FakeGrants(self.account, path=path)
        other.policies = self.grants.policies  # one account: one IAM
        return other

    def create_policy(self, name: str, path: str, users=()) -> str:
        return self.grants.create_policy(name, path, DOC, attach_to=users)

    def attach(self, arn: str, user: str) -> None:
        self.grants.attach(arn, user)

    def attached(self, user: str) -> list[str]:
        return sorted(self.grants.attached(user))

    def exists(self, arn: str) -> bool:
        return arn in self.grants.policies

    def document(self, arn: str) -> dict:
        return self.grants.policies[arn].document

    def add_mfa(self, user: str) -> str:
        serial = f"arn:aws:iam::{self.account}:mfa/{user}"
        self.grants.set_mfa(user, serial)
        return serial


@pytest.fixture(params=["fake", pytest.param("iam", marks=pytest.mark.moto)])
def iam(request):
    account = str(next(_accounts))
    if request.param == "fake":
        return FakeIam(account, max_attached=3)
    request.getfixturevalue("moto")
    return RealIam(account, max_attached=3)


def give(iam, principal=ALICE, rid="req-20261112-000001") -> str:
    return iam.grants.grant(principal=principal, request_id=rid, document=DOC, description="d",
                            tags={"drawbridge:request-id": rid})


def test_grant_creates_and_attaches_once(iam):
    arn = give(iam)
    assert arn == f"arn:aws:iam::{iam.account}:policy/drawbridge/drawbridge-req-20261112-000001"
    assert give(iam) == arn  # a retried worker
    assert iam.attached("alice") == [arn] and iam.document(arn) == DOC
    assert iam.grants.drawbridge_policies() == [("req-20261112-000001", arn, 1)]


def test_grant_stops_at_the_users_managed_policy_limit(iam):
    iam.create_policy("team-readonly", "/", ["alice"])  # not Drawbridge's, but it counts
    held = [give(iam, rid=f"req-20261112-00000{i}") for i in (1, 2)]
    with pytest.raises(GrantLimitReached, match=r"^IAM user alice already has 3 managed policies attached "
                                                r"\(the limit is 3\); revoke a grant first$"):
        give(iam, rid="req-20261112-000003")
    assert give(iam, rid="req-20261112-000002") == held[1]  # one she holds is no new attachment
    assert give(iam, DAVE, rid="req-20261112-000003")  # the limit is per user
    assert len(iam.attached("alice")) == 3


def test_revoke_removes_exactly_this_grant_and_reports_copies(iam):
    mine = give(iam)
    other = give(iam, rid="req-20261112-000002")
    iam.attach(mine, "dave")  # copied by hand

    assert iam.grants.revoke(principal=ALICE, request_id="req-20261112-000001") == [DAVE]

    assert not iam.exists(mine) and iam.attached("dave") == [] and iam.attached("alice") == [other]
    assert iam.grants.revoke(principal=ALICE, request_id="req-20261112-000001") == []  # already gone: done
    assert iam.grants.revoke(principal=ALICE, request_id="req-20261112-000002") == []
    assert iam.attached("alice") == [] and iam.grants.drawbridge_policies() == []


def test_only_drawbridges_own_policies_are_listed(iam):
    mine = give(iam)
    iam.attach(mine, "dave")
    iam.create_policy("team-readonly", "/", ["dave"])
    iam.create_policy("other-thing", "/drawbridge/", ["dave"])
    iam.create_policy("drawbridge-req-20261101-bbbbbb", "/drawbridge/staging/", ["dave"])
    restored = iam.create_policy("drawbridge-req-20261101-aaaaaa", "/drawbridge/")

    assert sorted(iam.grants.drawbridge_policies()) == [("req-20261101-aaaaaa", restored, 0),
                                                        ("req-20261112-000001", mine, 2)]
    assert sorted(iam.grants.attached_principals(mine), key=str) == [ALICE, DAVE]
    assert iam.grants.attached_principals(restored) == []
    # a policy that is gone: real IAM says NoSuchEntity (the adapter: None); moto answers an
    # empty list. Either way nobody holds it.
    assert not iam.grants.attached_principals(restored.replace("aaaaaa", "cccccc"))


def test_revoke_from_and_remove_policy_are_idempotent(iam):
    arn = give(iam)
    iam.attach(arn, "dave")
    iam.grants.revoke_from(DAVE, "req-20261112-000001")
    iam.grants.revoke_from(DAVE, "req-20261112-000001")  # not attached any more: fine
    iam.grants.revoke_from(ALICE, "req-20261112-000009")  # no such policy: fine
    assert iam.attached("dave") == [] and iam.attached("alice") == [arn]

    with pytest.raises(Exception):  # IAM will not delete a policy alice still holds
        iam.grants.remove_policy("req-20261112-000001", [DAVE])
    assert iam.exists(arn)
    iam.grants.remove_policy("req-20261112-000001", [ALICE])
    assert not iam.exists(arn) and iam.attached("alice") == []
    iam.grants.remove_policy("req-20261112-000001", [ALICE])  # already gone: fine


def test_mfa_serial(iam):
    assert iam.grants.mfa_serial(ALICE) is None
    serial = iam.add_mfa("alice")
    assert iam.grants.mfa_serial(ALICE) == serial


def test_only_iam_users(iam):
    with pytest.raises(ValueError, match="IAM users"):
        give(iam, Principal("role_session", "alice"))


def test_stages_in_one_account_never_see_each_others_grants(iam):
    dev, prod = iam.stage("/drawbridge/dev/"), iam.stage("/drawbridge/prod/")
    in_prod = prod.grant(principal=ALICE, request_id="req-20261112-000001", document=DOC, description="d", tags={})
    in_dev = dev.grant(principal=DAVE, request_id="req-20261112-000002", document=DOC, description="d", tags={})
    assert in_prod.startswith(f"arn:aws:iam::{iam.account}:policy/drawbridge/prod/")
    assert prod.drawbridge_policies() == [("req-20261112-000001", in_prod, 1)]
    assert dev.drawbridge_policies() == [("req-20261112-000002", in_dev, 1)]
    assert iam.grants.drawbridge_policies() == []  # the unstaged installation sees neither


def test_an_existing_policy_with_another_document_is_not_reused(iam):
    mismatch = getattr(errors, "GrantMismatch", None)
    if mismatch is None:
        pytest.skip("this version of the adapter reuses whatever policy it finds")
    iam.create_policy("drawbridge-req-20261112-000001", "/drawbridge/")  # made by hand with DOC
    wider = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    with pytest.raises(mismatch):
        iam.grants.grant(principal=ALICE, request_id="req-20261112-000001", document=wider, description="d",
                         tags={})
    assert iam.attached("alice") == []
    arn = give(iam)  # the same document as the policy IAM holds: reused
    assert iam.attached("alice") == [arn]


def _grant_doc(hours: int, role: str = "arn:aws:iam::222222222222:role/admin") -> dict:
    from chalicelib import policy as pol

    return pol.grant_policy(role, T0 + timedelta(hours=hours), "req-20261112-000001")


def test_extend_moves_only_the_expiry_of_the_grant_its_holder_has(iam):
    from chalicelib.domain.model import iso_z

    rid = "req-20261112-000001"
    arn = iam.grants.grant(principal=ALICE, request_id=rid, document=_grant_doc(1), description="d",
                           tags={"drawbridge:request-id": rid})
    assert iam.grants.extend(principal=ALICE, request_id=rid, document=_grant_doc(2)) == arn
    assert iam.document(arn) == _grant_doc(2) and iam.attached("alice") == [arn]
    assert iam.grants.drawbridge_policies() == [(rid, arn, 1)]  # still one grant, one holder
    assert iam.grants.extend(principal=ALICE, request_id=rid, document=_grant_doc(2)) == arn  # a repeat
    assert iam.document(arn) == _grant_doc(2)
    assert iso_z(T0 + timedelta(hours=2)) in json.dumps(iam.document(arn))


def test_extend_refuses_what_is_not_this_holders_grant_for_the_same_role(iam):
    rid = "req-20261112-000001"
    with pytest.raises(errors.GrantMismatch):  # no policy
        iam.grants.extend(principal=ALICE, request_id=rid, document=_grant_doc(2))
    arn = iam.grants.grant(principal=ALICE, request_id=rid, document=_grant_doc(1), description="d", tags={})
    refused = [
        dict(principal=DAVE, document=_grant_doc(2)),  # somebody else's grant
        dict(principal=ALICE, document=_grant_doc(2, "arn:aws:iam::222222222222:role/other")),  # another role
    ]
    for kwargs in refused:
        with pytest.raises(errors.GrantMismatch):
            iam.grants.extend(request_id=rid, **kwargs)
    iam.attach(arn, "dave")  # copied by hand: extending it would lengthen dave's access too
    with pytest.raises(errors.GrantMismatch):
        iam.grants.extend(principal=ALICE, request_id=rid, document=_grant_doc(2))
    assert iam.document(arn) == _grant_doc(1)


@pytest.mark.moto
def test_a_lost_answer_retried_by_botocore_finds_its_own_claim(request):
    """The transaction landed but its answer was lost, and botocore sent it again: the
    retry fails on the delivery claim it wrote itself, and the adapter says AlreadyDelivered
    (a plain Conflict would have the use case draw another id and make a second request)."""
    from chalicelib.adapters.store import DynamoStore, create_table_from_template
    from local.seed import TABLE_TEMPLATE
    from local.seed import client as aws

    request.getfixturevalue("moto")
    client = aws("dynamodb")
    table = f"contract-{next(_tables)}"
    create_table_from_template(client, table, str(TABLE_TEMPLATE))
    sent = []

    def lose_first_answer(attempts, **_):
        sent.append(attempts)
        return 0 if attempts == 1 else None  # "retry at once" after the first (successful) send

    client.meta.events.register("needs-retry.dynamodb.TransactWriteItems", lose_first_answer)
    store = DynamoStore(client, table)
    req, event = new("req-20261112-000001")

    with pytest.raises(errors.AlreadyDelivered):
        store.create(req, event, claim="cmd#lost")

    assert sent == [1, 2]  # the transaction was really sent twice
    assert store.get(req.request_id) == req and len(store.history(req.request_id)) == 1
    assert store.first_delivery("cmd#lost", T0) == (False, req.request_id)


# -- leases (one writer of a role's cut-off policy at a time) ---------------------------------


def test_a_lease_has_one_holder_until_it_runs_out(store):
    lease = timedelta(minutes=2)
    assert store.take_lease("CUT#r", "a", T0, lease) == {}
    assert store.take_lease("CUT#r", "b", T0 + timedelta(seconds=30), lease) is None
    assert store.take_lease("CUT#r", "a", T0 + timedelta(seconds=31), lease) == {}  # renewed by its holder
    assert store.take_lease("CUT#r", "b", T0 + timedelta(minutes=3), lease) == {}  # ran out: taken over
    store.release_lease("CUT#r", "a", {"document": {"stale": True}})  # no longer a's: changes nothing
    assert store.take_lease("CUT#r", "c", T0 + timedelta(minutes=3, seconds=1), lease) is None
    assert store.take_lease("CUT#other", "c", T0, lease) == {}  # another key is another lease


def test_a_released_lease_keeps_what_its_holder_left_for_the_next(store):
    lease = timedelta(minutes=2)
    store.take_lease("CUT#r", "a", T0, lease)
    store.release_lease("CUT#r", "a", {"document": {"Statement": [1]}})
    assert store.take_lease("CUT#r", "b", T0 + timedelta(seconds=1), lease) == {"document": {"Statement": [1]}}
    store.release_lease("CUT#r", "b")  # left nothing new: the data stays
    assert store.take_lease("CUT#r", "c", T0 + timedelta(seconds=2), lease) == {"document": {"Statement": [1]}}
