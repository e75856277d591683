"""``make demo``: the whole Drawbridge story on an embedded local stack, over real HTTP.

    python -m local.demo [--keep-logs]

Starts :class:`local.stack.LocalStack` (moto_server, the Slack stand-in, the app
under ``chalice local``; all on 127.0.0.1), then plays the story step by step and
checks that every step did what the narration says. Exit status 0 only if all of
them did; otherwise the first failing step is reported as
``FAILED at step N: expected ..., got ...``.

Time: the grant lasts 3 hours once extended, and nobody waits for that. Step 10 runs the ``sweep``
handler in this process inside ``time_machine.travel(expires_at + 1 min)``; only this
process's clock moves (the app server and moto keep real time), and nothing in
``chalicelib`` knows about it. See docs/DEMO.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from local.stack import LocalStack, StackError, StackHandle, load_cloudtrail, parse_time, refresh_cloudtrail

PROD_ADMIN = "arn:aws:iam::222222222222:role/admin"
REQUEST_TEXT = "/aws-access prod admin 2h fixing incident 4521"
CLOUDTRAIL_FIXTURE = "assume_role_bastion_copy"
_REQUEST_ID = re.compile(r"req-\d{8}-[0-9a-f]{6}")
_SWITCH_ROLE = re.compile(r"https://signin\.aws\.amazon\.com/switchrole\?[^\s|>]+")
TOTAL = 12

Out = Callable[[str], None]


class StepFailed(Exception):
    def __init__(self, expected: str, got: Any):
        super().__init__(f"expected {expected}, got {got}")
        self.expected, self.got = expected, got


class NotImplementedYet(Exception):
    pass


def expect(ok: bool, expected: str, got: Any) -> None:
    if not ok:
        raise StepFailed(expected, _short(got))


def _short(value: Any, limit: int = 400) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + " …"


def _say(text: str) -> None:
    print(text, flush=True)


@dataclass
class StoryResult:
    total: int = TOTAL
    passed: list[int] = field(default_factory=list)
    failure: tuple[int, str] | None = None  # (step, "expected ..., got ...")
    not_implemented: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.not_implemented and len(self.passed) == self.total


class Story:
    """The demo's steps against a running stack. ``run()`` never raises for a
    misbehaving app: it returns a :class:`StoryResult` that says what went wrong."""

    def __init__(self, stack: StackHandle, out: Out = _say):
        self.stack = stack
        self.out = out
        self.catalog = stack.catalog
        self.rid = ""
        self.expires_at: datetime | None = None
        self.assumed_arn = ""
        self.assumed_at: datetime | None = None
        self.granted_by = 0.0

    # ---- helpers ------------------------------------------------------------------------
    def note(self, text: str) -> None:
        for line in str(text).splitlines() or [""]:
            self.out(f"       {line}")

    def card(self) -> dict:
        card = self.stack.card(self.rid)
        expect(card is not None, f"an approval card for {self.rid} in {self.catalog.approvals_channel}",
               "no such message")
        return card  # type: ignore[return-value]

    def dms(self, person: str) -> list[dict]:
        return self.stack.messages(channel=self.catalog.people[person].slack_user)

    # ---- the steps ------------------------------------------------------------------------
    def step1(self) -> str:
        got = self.stack.assume_role("alice", PROD_ADMIN)
        self.note(f"sts:AssumeRole as alice -> {got}")
        expect(got == "AccessDenied", "AccessDenied", got)
        return "denied: alice has no standing access"

    def step2(self) -> str:
        reply = self.stack.signed_command("alice", REQUEST_TEXT)
        expect(reply.status == 200, "HTTP 200", f"HTTP {reply.status} {reply.body!r}")
        body = reply.body if isinstance(reply.body, dict) else {}
        expect(body.get("response_type") == "ephemeral", "an ephemeral reply", reply.body)
        found = _REQUEST_ID.search(reply.text)
        expect(found is not None, "a request id (req-YYYYMMDD-xxxxxx) in the reply", reply.text)
        self.rid = found.group(0)  # type: ignore[union-attr]
        expect("needs 2 of" in reply.text, "the reply to say it needs 2 approvals", reply.text)
        self.note("alice sees, only she:")
        self.note("  " + reply.text)
        return f"request {self.rid} is pending"

    def step3(self) -> str:
        card = self.card()
        payload = (card.get("metadata") or {}).get("event_payload")
        want = {"request_id": self.rid, "requester": "alice", "account": "prod", "role": "admin",
                "duration_seconds": 7200, "reason": "fixing incident 4521"}
        expect(card.get("event_type") == "access_requested", "card metadata event_type access_requested",
               card.get("event_type"))
        expect(payload == want, f"card metadata payload {want}", payload)
        text = card.get("all_text", "")
        expect("Approve" in text and "Deny" in text and "0 of 2" in text,
               "Approve/Deny buttons and '0 of 2' on the card", text)
        self.note(f"(printed above by the Slack stand-in as #aws-access-approvals, ts {card['ts']})")
        return "the card asks @bob and @carol, 0 of 2 approvals"

    def _approve(self, person: str, count: int) -> dict:
        reply = self.stack.signed_click(person, "approve_request", self.rid)
        expect(reply.status == 200, f"HTTP 200 for {person}'s click", f"HTTP {reply.status} {reply.body!r}")
        return self.card()

    def step4(self) -> str:
        card = self._approve("bob", 1)
        expect(card.get("event_type") == "access_approved", "card event_type access_approved",
               card.get("event_type"))
        expect("1 of 2" in card.get("all_text", ""), "'1 of 2' on the card", card.get("all_text"))
        told = [m for m in self.dms("alice") if m.get("event_type") == "access_approved"]
        expect(len(told) == 1 and "1 of 2" in told[0].get("all_text", ""),
               "one 'bob approved (1 of 2)' DM to alice", [m.get("event_type") for m in self.dms("alice")])
        still = self.stack.assume_role("alice", PROD_ADMIN)
        expect(still == "AccessDenied", "alice still denied after one approval", still)
        return "1 of 2: not enough yet (alice is told, and still denied)"

    def step5(self) -> str:
        card = self._approve("carol", 2)
        payload = (card.get("metadata") or {}).get("event_payload") or {}
        expect(card.get("event_type") == "access_granted", "card event_type access_granted",
               card.get("event_type"))
        expect(payload.get("approvers") == ["bob", "carol"], "approvers ['bob', 'carol']", payload.get("approvers"))
        expect(payload.get("role_arn") == PROD_ADMIN, f"role_arn {PROD_ADMIN}", payload.get("role_arn"))
        expect(not [b for b in card.get("blocks", []) if b.get("type") == "actions"],
               "no buttons left on the decided card", card.get("blocks"))
        self.expires_at = parse_time(payload["expires_at"])
        self.granted_by = time.time()  # the grant is in IAM before carol's click is answered (docs/REFERENCE.md)
        attached = self.stack.attached_policies("alice")
        expect(attached == [f"drawbridge-{self.rid}"], f"one grant policy drawbridge-{self.rid} on IAM user alice",
               attached)
        self.note(f"IAM user alice now has policy {attached[0]} (sts:AssumeRole on {PROD_ADMIN}, "
                  f"until {payload['expires_at']}, MFA)")
        return f"2 of 2: granted until {payload['expires_at']}"

    def step6(self) -> str:
        dms = [m for m in self.dms("alice") if m.get("event_type") == "access_granted"]
        expect(len(dms) == 1, "one access_granted DM to alice", [m.get("event_type") for m in self.dms("alice")])
        text = dms[0].get("all_text", "")
        link = _SWITCH_ROLE.search(text)
        expect(link is not None, "a switch-role link in the DM", text)
        expect("role_arn = " + PROD_ADMIN in text and "[profile" in text, "a CLI profile in the DM", text)
        profile = text[text.index("[profile"):].split("```", 1)[0].strip()
        self.note("console: " + link.group(0))  # type: ignore[union-attr]
        self.note("CLI profile (~/.aws/config):")
        for line in profile.splitlines():
            self.note("  " + line)
        return "alice has her switch-role link and profile"

    def step7(self) -> str:
        got = self.stack.assume_role("alice", PROD_ADMIN)
        self.assumed_at = datetime.now(timezone.utc)
        self.note(f"sts:AssumeRole as alice -> {got}")
        expect(got.startswith("arn:aws:sts::222222222222:assumed-role/admin/alice"),
               "an assumed-role ARN arn:aws:sts::222222222222:assumed-role/admin/alice", got)
        self.assumed_arn = got
        return "allowed: alice is admin in prod"

    def step8(self) -> str:
        from chalicelib import handlers

        if not hasattr(handlers, "role_assumed"):
            raise NotImplementedYet("chalicelib.handlers.role_assumed does not exist yet (on_role_assumed)")
        channel = self.catalog.security_channel
        event = refresh_cloudtrail(
            load_cloudtrail(CLOUDTRAIL_FIXTURE), at=self.assumed_at, iam_user="alice",
            access_key_id=self.stack.world.people["alice"].access_key_id, assumed_role_arn=self.assumed_arn)
        self.note(f"CloudTrail AssumeRole event {event['detail']['eventID']} at {event['detail']['eventTime']} "
                  f"-> on_role_assumed")
        outcome = self.stack.invoke("on_role_assumed", event)
        self.note(f"handler returned {outcome}")
        alerts = [m for m in self.stack.messages(channel=channel, event_type="role_assumed")
                  if (m.get("metadata") or {}).get("event_payload", {}).get("event_id") == event["detail"]["eventID"]]
        expect(len(alerts) == 1, f"one role_assumed alert for event {event['detail']['eventID']} in {channel}",
               f"{len(alerts)} ({len(self.stack.messages(channel=channel))} messages in {channel})")
        payload = alerts[0]["metadata"]["event_payload"]
        expect(payload.get("request_id") == self.rid, f"the alert to name the grant's request id {self.rid}",
               f"request_id={payload.get('request_id')!r} (payload {payload})")
        return f"the security channel saw it, tied to {self.rid}"

    def step8b(self) -> str:
        assert self.expires_at is not None
        old = self.expires_at
        reply = self.stack.signed_command("alice", f"/aws-access extend {self.rid} 1h incident 4521 needs longer")
        expect(reply.status == 200 and "waiting for approval" in reply.text,
               "an ephemeral reply that the extension waits for approval", reply.text)
        self.note("alice sees: " + reply.text)
        card = self.card()
        expect("approve_extension" in str(card.get("blocks")), "Approve extension / Deny extension on the card",
               card.get("all_text"))
        before, _ = self.stack.grant_expiry("alice", self.rid)
        expect(before == _z(old), f"the grant still ending at {_z(old)} until the extension is approved", before)
        click = self.stack.signed_click("bob", "approve_extension", self.rid)
        expect(click.status == 200, "HTTP 200 for bob's click", f"HTTP {click.status} {click.body!r}")
        new = old + timedelta(hours=1)
        after, versions = self.stack.grant_expiry("alice", self.rid)
        expect((after, versions) == (_z(new), 1),
               f"the same grant policy, one version, now ending at {_z(new)}", (after, versions))
        dms = [m for m in self.dms("alice") if m.get("event_type") == "access_extended"]
        payload = (dms[-1].get("metadata") or {}).get("event_payload") if dms else None
        want = {"request_id": self.rid, "old_expires_at": _z(old), "expires_at": _z(new), "approvers": ["bob"]}
        expect(payload == want, f"an access_extended DM to alice with {want}", payload)
        self.note(f"IAM: policy drawbridge-{self.rid} switched to one new version ending {_z(new)} "
                  "(the old version stayed in force until the switch)")
        self.expires_at = new
        return f"extended by 1h without a gap: until {_z(new)} (from the old expiry, not from the approval)"

    def step9(self) -> str:
        assert self.expires_at is not None
        at = self.expires_at + timedelta(minutes=1)
        self.note(f"this process's clock -> {at:%Y-%m-%d %H:%M:%S} UTC (expiry + 1 min; the app server and moto "
                  "keep real time); running sweep")
        report = self.stack.sweep(at=at)
        self.note(f"sweep report: {report}")
        expect(isinstance(report, dict) and report.get("expired_grants") == 1 and not report.get("errors"),
               "the sweep to end exactly 1 grant without errors", report)
        card = self.card()
        expect(card.get("event_type") == "access_expired" and "expired" in card.get("all_text", "").lower(),
               "the card to show expired", f"{card.get('event_type')}: {card.get('all_text')}")
        kinds = [m.get("event_type") for m in self.dms("alice")]
        expect(kinds[-1:] == ["access_expired"], "alice DM'd access_expired", kinds)
        attached = self.stack.attached_policies("alice")
        expect(attached == [], "no grant policy left on IAM user alice", attached)
        # her session from step 7 would live on for up to an hour: the role now denies it
        role_id, doc = self.stack.cutoff_document(PROD_ADMIN)
        cuts = [st for st in doc.get("Statement", [])
                if st.get("Condition", {}).get("StringEquals", {}).get("aws:userid") == f"{role_id}:alice"]
        expect(len(cuts) == 1, f"a deny for aws:userid {role_id}:alice in the admin role's cut-off policy", doc)
        issued_before = cuts[0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        self.note(f"role admin's cut-off policy: Deny * for {role_id}:alice when aws:TokenIssueTime < "
                  f"{issued_before} (her step-7 session is cut off; moto does not evaluate it, IAM does)")
        expect("live sessions ended at" in card.get("all_text", ""), "the card to say live sessions ended",
               card.get("all_text"))
        return "expired: policy removed, live sessions cut off, card updated, alice told"

    def step10(self) -> str:
        got = self.stack.assume_role("alice", PROD_ADMIN)
        self.note(f"sts:AssumeRole as alice -> {got}")
        expect(got == "AccessDenied", "AccessDenied", got)
        return "denied again: access ended on time"

    def step12(self) -> str:
        approvals, security = self.catalog.approvals_channel, self.catalog.security_channel
        reason = "payments database down, on-call approvers unreachable"
        reply = self.stack.signed_command("alice", f"/aws-access breakglass prod admin 30m {reason}")
        body = reply.body if isinstance(reply.body, dict) else {}
        buttons = [e for b in body.get("blocks") or [] if b.get("type") == "actions" for e in b.get("elements", [])]
        expect(reply.status == 200 and [e.get("action_id") for e in buttons] == ["confirm_break_glass"],
               "a private answer with a Confirm button", reply.body)
        expect(self.stack.attached_policies("alice") == [], "nothing granted before Confirm",
               self.stack.attached_policies("alice"))
        self.note("alice sees, only she: " + reply.text)
        click = self.stack.signed_click("alice", "confirm_break_glass", buttons[0]["value"])
        expect(click.status == 200, "HTTP 200 for alice's Confirm", f"HTTP {click.status} {click.body!r}")
        used = self.stack.messages(channel=security, event_type="break_glass_used")
        expect(len(used) == 1, f"one break_glass_used notice in {security}", len(used))
        payload = used[0]["metadata"]["event_payload"]
        rid = payload["request_id"]
        expect(payload.get("requester") == "alice" and payload.get("reason") == reason and
               "<!here>" in used[0].get("text", ""), "break_glass_used naming alice and her reason, with <!here>",
               used[0])
        card = self.stack.card(rid) or {}
        expect(card.get("channel") == approvals and "<!here>" in card.get("text", "") and
               "BREAK-GLASS" in card.get("all_text", ""), f"a loud BREAK-GLASS card in {approvals}", card)
        attached = self.stack.attached_policies("alice")
        expect(attached == [f"drawbridge-{rid}"], f"the grant policy drawbridge-{rid} on alice, at once", attached)
        got = self.stack.assume_role("alice", PROD_ADMIN)
        expect(got.startswith("arn:aws:sts::222222222222:assumed-role/admin/alice"), "alice is admin again", got)
        ack = self.stack.signed_click("bob", "ack_break_glass", rid)
        expect(ack.status == 200, "HTTP 200 for bob's Acknowledge", f"HTTP {ack.status} {ack.body!r}")
        card = self.stack.card(rid) or {}
        expect("acknowledged" in card.get("all_text", "").lower(), "the card to say bob acknowledged it",
               card.get("all_text"))
        self.note(f"{rid}: policy drawbridge-{rid} (same MFA and expiry conditions), <!here> in {approvals} and "
                  f"{security}; bob acknowledged the use")
        return f"break-glass {rid}: granted without approvals, loud in both channels, reviewed by bob"

    STEPS: list[tuple[str, str, str]] = [
        ("step1", f"alice tries sts:AssumeRole on {PROD_ADMIN} before asking", "AccessDenied"),
        ("step2", f"alice runs `{REQUEST_TEXT}`", "an ephemeral reply with a request id"),
        ("step3", "the approval card appears in #aws-access-approvals", "the access_requested card"),
        ("step4", "bob clicks Approve", "1 of 2 on the card"),
        ("step5", "carol clicks Approve", "the grant (2 of 2)"),
        ("step6", "alice's DM has the switch-role link and the CLI profile", "the access_granted DM"),
        ("step7", "alice tries sts:AssumeRole again", "an assumed-role ARN"),
        ("step8", "CloudTrail's record of that call reaches on_role_assumed",
         "a role_assumed alert in the security channel naming the request id"),
        ("step8b", "alice asks `/aws-access extend <id> 1h ...`; bob clicks Approve extension",
         "the same grant, now ending 1h later"),
        ("step9", "time moves past expiry; the sweep runs", "the grant to expire and her live sessions cut off"),
        ("step10", "alice tries sts:AssumeRole once more", "AccessDenied"),
        ("step12", "an emergency: alice runs `/aws-access breakglass prod admin 30m ...`, Confirms; bob reviews",
         "a grant at once, <!here> in both channels, the review recorded"),
    ]

    def run(self) -> StoryResult:
        result = StoryResult(total=len(self.STEPS))
        t0 = time.monotonic()
        for n, (method, title, expected) in enumerate(self.STEPS, start=1):
            self.out("")
            self.out(f"[{n}/{result.total}] {title}")
            try:
                summary = getattr(self, method)()
            except NotImplementedYet as exc:
                self.out(f"  ✘ NOT IMPLEMENTED at step {n}: {exc}")
                result.not_implemented.append((n, str(exc)))
                continue
            except StepFailed as exc:
                result.failure = (n, str(exc))
            except Exception as exc:  # noqa: BLE001 - any surprise is a failed step, with its reason
                result.failure = (n, f"expected {expected}, got {type(exc).__name__}: {_short(str(exc))}")
            if result.failure is not None:
                self.out(f"  ✘ FAILED at step {n}: {result.failure[1]}")
                break
            result.passed.append(n)
            self.out(f"  ✔ {summary}")
        result.seconds = time.monotonic() - t0
        return result


def _z(at: datetime) -> str:
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_story(stack: StackHandle, out: Out = _say) -> StoryResult:
    """Play the demo against a started stack (used by ``make demo`` and tests/e2e)."""
    return Story(stack, out).run()


def summary_line(result: StoryResult, seconds: float) -> str:
    line = f"{len(result.passed)}/{result.total} steps passed in {seconds:.1f} s"
    if result.not_implemented:
        line += "; not implemented: " + ", ".join(f"step {n}" for n, _ in result.not_implemented)
    if result.failure is not None:
        line += f"; FAILED at step {result.failure[0]}: {result.failure[1]}"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep-logs", action="store_true", help="keep the stack's log directory")
    args = parser.parse_args(argv)

    t0 = time.monotonic()
    _say("Drawbridge demo: request -> two approvals -> grant -> use -> alert -> expiry")
    _say("Local stack (all on 127.0.0.1): moto_server (AWS, IAM enforced), Slack stand-in, app under chalice local")
    result: StoryResult | None = None
    log_dir = None
    try:
        with LocalStack(echo=lambda text: _say("  " + text), keep_logs=args.keep_logs) as stack:
            log_dir = stack.log_dir
            for note in stack.notes:
                _say(f"  note: {note}")
            result = run_story(stack)
            if not result.ok:
                stack.keep_logs = True
            _say("")
            _say("stopping the local stack")
    except StackError as exc:
        _say(f"FAILED before step 1: the local stack did not start: {exc}")
        return 2
    except KeyboardInterrupt:
        _say("\ninterrupted; every local process was stopped")
        return 130
    seconds = time.monotonic() - t0
    assert result is not None
    _say("")
    _say(summary_line(result, seconds) + f" (story {result.seconds:.1f} s)")
    if not result.ok:
        _say(f"logs kept in {log_dir} (app.log = the app server, handlers.log = sweep/on_role_assumed, "
             "moto.log, slack.log)")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
