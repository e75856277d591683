"""Calls per lifecycle must not grow with the table: counted with a small and a large table.

Lifecycle: alice requests prod/admin -> bob approves -> carol approves -> the worker
grants -> CloudTrail reports her AssumeRole (the bastion copy, moved to a minute after
the grant) -> on_role_assumed alerts -> the sweep ends the grant after expiry, at the
first quarter hour after it (where the deep pass reconcile used to make asked IAM about
every live grant; every minute now runs the same bounded rotation instead). Acks
run as in Lambda (deferral = one ``lambda:Invoke``), the deferred jobs through the
``worker`` handler. Every AWS call (by operation) and Slack Web API call (by method,
as the stand-in received them) is counted, once with a small table and once with
a large one: other requests (ended, by catalog and other people, including alice)
and other people's active grants (expiring after the lifecycle's sweep).
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from datetime import datetime, timedelta, timezone

from . import data
from .harness import TABLE, Row, load_cloudtrail, met, stack

T0 = datetime(2026, 11, 12, 14, 0, 0, tzinfo=timezone.utc)
STEPS = ["request", "approval 1", "approval 2 + grant", "alert", "expiry sweep"]


def row_names() -> list[str]:
    return ["Lifecycle calls: AWS (total)", "Lifecycle calls: Slack (total)", "Lifecycle calls: O(1)"]


def _lifecycle(others: int, grants: int) -> tuple[dict[str, Counter], datetime]:
    import time_machine

    steps: dict[str, Counter] = {}
    with time_machine.travel(T0, tick=False) as clock, stack(in_lambda=True) as st:
        people = [(p.key, p.slack_user, p.iam_user) for p in st.catalog.people.values()]
        db = st.dynamodb()
        data.write(db, TABLE, data.historical(others, T0, catalog_people=people))
        live = list(data.active(grants, T0, expires_at=T0 + timedelta(days=2)))
        data.write(db, TABLE, live)
        data.grant_in_iam(st.iam(), st.catalog.bastion_account_id, live)  # real grants have real policies

        def ack_and_worker(name, fn):
            def both():
                status, body = fn()
                if status != 200:
                    raise RuntimeError(f"{name}: HTTP {status} {body!r}")
                st.run_pending()
                return body
            body, _, w = st.measure(both)
            steps[name] = w.calls()
            return body

        body = ack_and_worker("request", lambda: st.command("alice", "prod admin 1h bench lifecycle"))
        m = re.search(r"req-\d{8}-[0-9a-f]{6}", body.get("text", ""))
        if not m:
            raise RuntimeError(f"request refused: {body!r}")
        rid = m.group(0)
        clock.shift(timedelta(minutes=2))
        ack_and_worker("approval 1", lambda: st.approve("bob", rid))
        clock.shift(timedelta(seconds=15))
        ack_and_worker("approval 2 + grant", lambda: st.approve("carol", rid))
        granted = st.store().get(rid)
        if granted.grant_status.value != "ACTIVE":
            raise RuntimeError(f"not granted: {granted}")

        event = copy.deepcopy(load_cloudtrail("assume_role_bastion_copy"))
        used_at = (granted.granted_at + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        event["time"] = event["detail"]["eventTime"] = used_at
        clock.shift(timedelta(minutes=2))
        alert, _, w = st.measure(lambda: st.role_assumed(event))
        steps["alert"] = w.calls()
        if alert.get("kind") != "covered" or alert.get("request_id") != rid:
            raise RuntimeError(f"alert not tied to the grant: {alert}")

        swept_at = _quarter_after(granted.expires_at + timedelta(seconds=30))
        clock.move_to(swept_at)
        report, _, w = st.measure(st.sweep)
        steps["expiry sweep"] = w.calls()
        final = st.store().get(rid)
        if final.grant_status.value != "EXPIRED" or report.get("expired_grants") != 1 or report.get("errors"):
            raise RuntimeError(f"sweep did not end exactly this grant: {report} {final.grant_status}")
        if report.get("drift") or report.get("verified") != (1 if grants else 0):
            raise RuntimeError(f"the expiry sweep's rotation did not verify one live grant: {report}")
    return steps, swept_at


def _quarter_after(t: datetime) -> datetime:
    """The first quarter hour (:00, :15, :30, :45) at or after ``t``."""
    base = t.replace(minute=0, second=0, microsecond=0)
    quarters = [base + timedelta(minutes=15 * q) for q in range(5)]
    return next(q for q in quarters if q >= t)


def _growth(a: dict[str, Counter], b: dict[str, Counter]) -> str:
    """Where b makes more (or fewer) calls than a: 'expiry sweep: iam.ListEntitiesForPolicy +49'."""
    out = []
    for name in STEPS:
        diff = Counter(b[name])
        diff.subtract(a[name])
        out += [f"{name}: {k} {n:+d}" for k, n in sorted(diff.items()) if n]
    return "; ".join(out)


def run(smoke: bool) -> list[Row]:
    from chalicelib.usecases.sweep import VERIFY_CAP, VERIFY_ROUNDS, verify_slice_size

    small_cfg = (10, 1)
    history_cfg = (100, 1) if smoke else (10_000, 1)
    large_cfg = (100, 3) if smoke else (10_000, 50)
    small, swept_at = _lifecycle(*small_cfg)
    history, _ = _lifecycle(*history_cfg)
    large, _ = _lifecycle(*large_cfg)
    total_s, total_l = sum(small.values(), Counter()), sum(large.values(), Counter())
    cols = (f"{small_cfg[0]:,} other requests + {small_cfg[1]} other active grant / "
            f"{large_cfg[0]:,} + {large_cfg[1]}")

    def pair(a: int, b: int) -> str:
        return f"{a} / {b}"

    aws_s = sum(n for k, n in total_s.items() if not k.startswith("slack."))
    aws_l = sum(n for k, n in total_l.items() if not k.startswith("slack."))
    sl_s, sl_l = total_s.total() - aws_s, total_l.total() - aws_l
    rows = [
        Row("Lifecycle calls: AWS (total)", f"{pair(aws_s, aws_l)} ({cols})", "equal", met(aws_s == aws_l)),
        Row("Lifecycle calls: Slack (total)", f"{pair(sl_s, sl_l)}", "equal", met(sl_s == sl_l)),
    ]
    for key in sorted(set(total_s) | set(total_l)):
        per_step = ", ".join(f"{name} {small[name][key]}" for name in STEPS if small[name][key])
        rows.append(Row(f"Lifecycle calls: · {key}", f"{pair(total_s[key], total_l[key])} ({per_step})",
                        "equal", met(total_s[key] == total_l[key])))
    flat_history = small == history
    flat = flat_history and history == large
    verdict = [f"history {small_cfg[0]:,} → {history_cfg[0]:,}: "
               + ("identical" if flat_history else _growth(small, history)),
               f"other active grants {history_cfg[1]} → {large_cfg[1]}: "
               + ("identical" if history == large else _growth(history, large))]
    verdict.append(f"expiry sweep at {swept_at:%H:%M}, a quarter hour: "
                   f"the rotation verifies ceil(N/{VERIFY_ROUNDS}) live grants a run "
                   f"({verify_slice_size(history_cfg[1])} → {verify_slice_size(large_cfg[1])} here), "
                   f"at most {VERIFY_CAP}")
    rows.append(Row("Lifecycle calls: O(1)", ("yes" if flat else "no") + " (" + "; ".join(verdict) + ")",
                    "yes", met(flat)))
    return rows
