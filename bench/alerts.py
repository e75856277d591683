"""Alert throughput: CloudTrail AssumeRole events through ``on_role_assumed``, in-process.

The table holds many other people's active grants; alice holds prod/admin (granted
through the app). Every event is the bastion copy of her AssumeRole inside the grant,
each with its own ``eventID``/``sharedEventID``, so each one is claimed, posted to the
security channel, recorded as a use and threaded on the grant's card - the heaviest
path an event can take. Events go one after another through
``chalice.test.Client.lambda_.invoke`` (as one Lambda instance would take them).

The same events then go through a fresh Lambda-like process (``app.on_role_assumed``
called as the runtime calls it, moto and the stand-in over HTTP): its throughput with
real sockets, and its memory - heap peak under ``tracemalloc`` and what stays after
``gc`` per event - which is the app's alone (in this process, moto and the stand-in
keep every item and message, so memory here says nothing about the app).
"""

from __future__ import annotations

import copy
import os
import re
from datetime import datetime, timedelta, timezone

from . import data
from .harness import TABLE, Row, fmt_counts, load_cloudtrail, met, ms, settle, stack

GOAL_PER_SECOND = 500


def row_names() -> list[str]:
    return ["Alert throughput (on_role_assumed)", "Alert: time per event, split", "Alert: calls per event",
            "Alert, Lambda-like process: throughput over HTTP", "Alert: peak memory (Lambda-like process)"]


def lambda_like(n_timed: int, n_memory: int) -> dict:
    """The same events in a fresh process holding only the app (moto server and the
    stand-in over HTTP): throughput with real sockets, and memory that is the app's alone."""
    import json
    import tempfile

    from chalicelib.adapters.slack_notifier import SlackNotifier
    from chalicelib.adapters.store import DynamoStore
    from chalicelib.wiring import slack_client

    from .harness import BOT_TOKEN
    from .server import server_stack

    with server_stack() as ss:
        ss.reseed()
        now = datetime.now(timezone.utc).replace(microsecond=0)
        alice = ss.catalog.people["alice"]
        (grant,) = data.active(1, now, expires_at=now + timedelta(hours=3),
                               who=(alice.key, alice.slack_user, alice.iam_user))
        data.write(ss.client("dynamodb"), TABLE, [grant])
        channel, ts = SlackNotifier(slack_client(BOT_TOKEN, ss.slack.url)).post(
            ss.catalog.approvals_channel, "card", None, "access_granted", {"request_id": grant.request_id})
        DynamoStore(ss.client("dynamodb"), TABLE).save_card(grant.request_id, channel, ts)
        events = _events(load_cloudtrail("assume_role_bastion_copy"), 10 + n_timed + n_memory, 0, now)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(events, fh)
        try:
            result, _ = ss.child(BENCH_ALERT_EVENTS=fh.name, BENCH_ALERT_TIMED=str(n_timed),
                                 BENCH_FIRST_TEXT="dev admin 1h lambda-like", BENCH_SECOND_TEXT="prod readonly 1h x")
        finally:
            os.unlink(fh.name)
    return result["alerts"]


def _events(base: dict, n: int, start: int, at: datetime) -> list[dict]:
    out = []
    for i in range(start, start + n):
        e = copy.deepcopy(base)
        e["time"] = e["detail"]["eventTime"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
        e["id"] = f"eb0eb000-0000-4000-8000-{i:012x}"
        e["detail"]["eventID"] = f"e7e70000-0000-4000-8000-{i:012x}"
        e["detail"]["sharedEventID"] = f"5a5ed000-0000-4000-8000-{i:012x}"
        e["detail"]["requestID"] = f"0a11ce00-0000-4000-8000-{i:012x}"
        out.append(e)
    return out


def run(smoke: bool) -> list[Row]:
    n_grants, n_events, warmup = (100, 30, 3) if smoke else (10_000, 500, 20)
    with stack(in_lambda=False) as st:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        data.write(st.dynamodb(), TABLE, data.active(n_grants, now, expires_at=now + timedelta(days=1)))
        status, body = st.command("alice", "prod admin 4h bench alerts")
        rid = re.search(r"req-\d{8}-[0-9a-f]{6}", (body or {}).get("text", "")).group(0)
        st.approve("bob", rid)
        st.approve("carol", rid)
        granted = st.store().get(rid)
        if granted.grant_status.value != "ACTIVE":
            raise RuntimeError(f"alice's grant is not active: {granted}")
        at = granted.granted_at + timedelta(seconds=30)
        base = load_cloudtrail("assume_role_bastion_copy")

        for e in _events(base, warmup, 0, at):
            st.role_assumed(e)
        settle()
        events = _events(base, n_events, warmup, at)
        outcomes = []

        def all_events():
            for e in events:
                outcomes.append(st.role_assumed(e))

        _, seconds, w = st.measure(all_events)
        bad = [o for o in outcomes if not (o.get("posted") and o.get("request_id") == rid)]
        if bad:
            raise RuntimeError(f"{len(bad)} events were not alerted as covered, e.g. {bad[0]}")

    lam = lambda_like(*((20, 20) if smoke else (300, 300)))
    lam_rate = lam["timed"] / lam["seconds"]

    rate = n_events / seconds
    per = seconds / n_events
    moto = w.moto_seconds / n_events
    aws_client = (w.aws_seconds - w.moto_seconds) / n_events
    slack = w.slack_seconds / n_events
    own = per - moto - aws_client - slack
    calls = w.calls()
    per_event = {k: v / n_events for k, v in calls.items()}
    whole = all(float(v).is_integer() for v in per_event.values())
    calls_figure = fmt_counts(calls.__class__({k: int(v) for k, v in per_event.items()})) if whole \
        else ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_event.items()))
    return [
        Row("Alert throughput (on_role_assumed)",
            f"{rate:.0f} events/s ({n_events:,} events, {n_grants:,} other active grants in the table); "
            f"without moto's time {1 / (per - moto):.0f}/s",
            f"≥ {GOAL_PER_SECOND}/s", met(rate >= GOAL_PER_SECOND)),
        Row("Alert: time per event, split",
            f"{ms(per)} ms = moto {ms(moto)} + botocore client {ms(aws_client)} + Slack calls {ms(slack)} "
            f"+ Drawbridge & chalice {ms(own)}", "—", "—"),
        Row("Alert: calls per event", calls_figure, "—", "—"),
        Row("Alert, Lambda-like process: throughput over HTTP",
            f"{lam_rate:.0f} events/s ({lam['timed']} events; fresh process with only the app, moto server and "
            "Slack stand-in over loopback HTTP, no other grants)", f"≥ {GOAL_PER_SECOND}/s",
            met(lam_rate >= GOAL_PER_SECOND)),
        Row("Alert: peak memory (Lambda-like process)",
            f"heap peak +{lam['peak_bytes'] / 2**20:.2f} MB while handling {lam['memory_events']} events "
            f"(tracemalloc), {lam['retained_bytes'] / lam['memory_events'] / 1024:.2f} KB kept per event after gc; "
            f"RSS {lam['rss_before_mb']:.0f} → {lam['rss_after_mb']:.0f} MB", "< 0.5 KB kept per event",
            met(lam["retained_bytes"] / lam["memory_events"] < 512)),
    ]
