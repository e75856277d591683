"""Alert throughput: CloudTrail AssumeRole events through ``on_role_assumed``.

The table holds many other people's active grants; alice holds prod/admin (granted
through the app). Every event is the bastion copy of her AssumeRole inside the grant,
each with its own ``eventID``/``sharedEventID``, so each one is found covered, claimed,
recorded as a use and posted to the security channel (the common path; the grant's
first use, threaded on its card, is in the warm-up). Events go one after another
through ``chalice.test.Client.lambda_.invoke`` (as one Lambda instance would take them).

The same events then go through a fresh Lambda-like process (``app.on_role_assumed``
called as the runtime calls it, the Slack stand-in over HTTP), once against moto as a
server and once against dynalite (DynamoDB's API in node, from npm), side by side: the
throughput with real sockets, and where the time goes (AWS calls: botocore, loopback
and the emulator; Slack calls; the rest is the app). Its memory - heap peak under
``tracemalloc`` and what stays after ``gc`` per event - is the app's alone.

Last, a burst: 1,000 calls (100 with ``--smoke``) within one simulated minute (the clock
moved with time_machine), 5 % of them by bob, who holds no grant; the stand-in answers
Slack's ~1 message a second per channel with 429 + Retry-After. The row says how many
calls were recorded and shown (each once: own alerts, digests), how many writes #security
got in the minute and in its busiest second, and what each call cost.
"""

from __future__ import annotations

import copy
import os
import re
from datetime import datetime, timedelta, timezone

from . import data
from .harness import METER, TABLE, Row, fmt_counts, load_cloudtrail, met, ms, settle, stack

GOAL_PER_SECOND = 500


def row_names() -> list[str]:
    return ["Alert throughput (on_role_assumed)", "Alert: time per event, split", "Alert: calls per event",
            "Alert, Lambda-like process: throughput over HTTP (moto server)",
            "Alert, Lambda-like process: throughput over HTTP (dynalite)",
            "Alert: peak memory (Lambda-like process)", "Alert burst: 1,000 calls in one minute"]


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


def lambda_like_dynalite(cli: str, n_timed: int) -> dict:
    """The same child process against dynalite instead of moto (the table made from
    policies/table.json, alice's grant and card written directly: dynalite has no
    TransactWriteItems, which the approval path uses)."""
    import json
    import subprocess
    import sys
    import tempfile

    import boto3

    from chalicelib.adapters.slack_notifier import SlackNotifier
    from chalicelib.adapters.store import DynamoStore
    from chalicelib.catalog import load_catalog
    from chalicelib.wiring import slack_client
    from local.slack_standin import SlackStandin

    from . import dynalite
    from .harness import BOT_TOKEN, CATALOG, ROOT, base_env
    from .server import CHILD

    catalog = load_catalog(CATALOG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    env.update({k: v for k, v in base_env().items() if v is not None})
    with dynalite.running(cli) as url, SlackStandin(token=BOT_TOKEN) as slack:
        db = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
        dynalite.create_table(db, TABLE)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        alice = catalog.people["alice"]
        (grant,) = data.active(1, now, expires_at=now + timedelta(hours=3),
                               who=(alice.key, alice.slack_user, alice.iam_user))
        data.write(db, TABLE, [grant])
        channel, ts = SlackNotifier(slack_client(BOT_TOKEN, slack.url)).post(
            catalog.approvals_channel, "card", None, "access_granted", {"request_id": grant.request_id})
        DynamoStore(db, TABLE).save_card(grant.request_id, channel, ts)
        events = _events(load_cloudtrail("assume_role_bastion_copy"), 10 + n_timed + 1, 0, now)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(events, fh)
        env.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                   SLACK_API_URL=slack.url, AWS_LAMBDA_FUNCTION_NAME="drawbridge-dev", PYTHONDONTWRITEBYTECODE="1",
                   DRAWBRIDGE_LOCAL_EMULATION="1", BENCH_SKIP_COMMANDS="1", BENCH_ALERT_EVENTS=fh.name,
                   BENCH_ALERT_TIMED=str(n_timed), BENCH_SLASH_USER=json.dumps({"user_id": alice.slack_user,
                                                                                 "user_name": "alice"}))
        try:
            proc = subprocess.run([sys.executable, str(CHILD)], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=600)
        finally:
            os.unlink(fh.name)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"dynalite child failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-600:]}")
    return json.loads(line[len("BENCH_RESULT "):])["alerts"]


def _split(lam: dict) -> str:
    """``4.1 ms = AWS 2.9 + Slack 0.8 + app 0.4`` (per event) of a Lambda-like run."""
    n, per = lam["timed"], lam["seconds"] / lam["timed"]
    aws, slack = lam.get("aws_seconds", 0.0) / n, lam.get("slack_seconds", 0.0) / n
    return (f"{ms(per)} ms per event = AWS calls (botocore, loopback, emulator) {ms(aws)} + Slack {ms(slack)} "
            f"+ app {ms(per - aws - slack)}")


def _per_event(calls: dict, n: int) -> str:
    from collections import Counter

    per = {k: v / n for k, v in calls.items()}
    if all(float(v).is_integer() for v in per.values()):
        return fmt_counts(Counter({k: int(v) for k, v in per.items()}))
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items()))


def burst(n: int) -> dict:
    """``n`` calls within one simulated minute through the app (moto in-process, the stand-in
    over HTTP with Slack's rate limits), then the sweeps that show a burst's tail."""
    import time

    import time_machine

    from local.events import refresh_cloudtrail

    with stack(in_lambda=False) as st:
        t0 = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=2)
        with time_machine.travel(t0 - timedelta(minutes=1), tick=False):
            _, body = st.command("alice", "prod admin 4h bench burst")
            rid = re.search(r"req-\d{8}-[0-9a-f]{6}", (body or {}).get("text", "")).group(0)
            st.approve("bob", rid)
            st.approve("carol", rid)
        base = load_cloudtrail("assume_role_bastion_copy")
        events = []
        for i in range(n):
            arrive = t0 + timedelta(seconds=60 * i / n)
            e = refresh_cloudtrail(base, at=arrive - timedelta(seconds=3), iam_user="bob" if i % 20 == 19 else "alice")
            events.append((arrive, e))
        st.slack.rate_limits = True  # Slack's ~1 message a second per channel, from here on
        settle()
        outcomes = []
        before = len(st.slack.calls)
        t = time.perf_counter()
        with METER.window() as w, time_machine.travel(t0, tick=False) as clock:
            for arrive, e in events:
                clock.move_to(arrive)
                outcomes.append(st.role_assumed(e))
        seconds = time.perf_counter() - t
        for minutes in (1, 2):  # the sweep shows what the burst's last second left
            with time_machine.travel(t0 + timedelta(minutes=minutes, seconds=5), tick=False):
                st.sweep()
        store = st.store()
        keys = [e["detail"]["sharedEventID"] for _, e in events]
        recorded = sum(1 for k in keys if store.call(k) is not None)
        msgs = st.slack.messages("C0SECURIT1")
        own = [m for m in msgs if m.event_type == "role_assumed"]
        digests = [m for m in msgs if m.event_type == "role_assumed_digest"]
        shown = len(own) + sum(int(m.event_payload.get("calls") or 0) for m in digests)
        calls = [c for c in st.slack.calls[before:] if c.params.get("channel") == "C0SECURIT1"]
        writes = [t_ for ch, _, t_ in st.slack.writes("C0SECURIT1")]
        start = t0.timestamp()
        busiest = max((sum(1 for u in writes if x <= u < x + 1) for x in writes), default=0)
        return {"n": n, "recorded": recorded, "shown": shown, "own": len(own), "digests": len(digests),
                "posts": sum(1 for c in calls if c.method == "chat.postMessage" and not c.error),
                "updates": sum(1 for c in calls if c.method == "chat.update" and not c.error),
                "refused": sum(1 for c in calls if c.error == "http_429"),
                "in_minute": sum(1 for x in writes if start <= x < start + 60), "busiest": busiest,
                "seconds": seconds, "calls": dict(w.aws), "uncovered": sum(1 for _, e in events
                                                                          if e["detail"]["userIdentity"]["userName"] == "bob"),
                "named": len({eid for m in msgs if "<!here>" in m.text
                              for eid in (m.event_payload.get("event_ids") or [m.event_payload.get("event_id")])})}


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
    from . import dynalite

    cli, why = dynalite.available(install=not smoke)
    dyn = lambda_like_dynalite(cli, 20 if smoke else 300) if cli else None
    b = burst(100 if smoke else 1000)

    rate = n_events / seconds
    per = seconds / n_events
    moto = w.moto_seconds / n_events
    aws_client = (w.aws_seconds - w.moto_seconds) / n_events
    slack = w.slack_seconds / n_events
    own = per - moto - aws_client - slack
    calls_figure = _per_event(w.calls(), n_events)
    if dyn is not None:
        dyn_rate = dyn["timed"] / dyn["seconds"]
        dyn_row = Row("Alert, Lambda-like process: throughput over HTTP (dynalite)",
                      f"{dyn_rate:.0f} events/s ({dyn['timed']} events, the same child against dynalite on "
                      f"127.0.0.1, {dyn_rate / lam_rate:.1f}× moto server); {_split(dyn)}; calls per event: "
                      f"{_per_event(dyn['calls'], dyn['timed'])}", f"≥ {GOAL_PER_SECOND}/s",
                      met(dyn_rate >= GOAL_PER_SECOND))
    else:
        dyn_row = Row("Alert, Lambda-like process: throughput over HTTP (dynalite)", why, f"≥ {GOAL_PER_SECOND}/s", "n/a")
    size = "" if b["n"] == 1000 else f"(--smoke: {b['n']} calls) "
    burst_ok = b["recorded"] == b["n"] == b["shown"] and b["named"] == b["uncovered"] and b["in_minute"] <= 63
    return [
        Row("Alert throughput (on_role_assumed)",
            f"{rate:.0f} events/s ({n_events:,} events, {n_grants:,} other active grants in the table, moto "
            f"in-process); without moto's time {1 / (per - moto):.0f}/s",
            f"≥ {GOAL_PER_SECOND}/s", met(rate >= GOAL_PER_SECOND)),
        Row("Alert: time per event, split",
            f"{ms(per)} ms = moto {ms(moto)} + botocore client {ms(aws_client)} + Slack calls {ms(slack)} "
            f"+ Drawbridge & chalice {ms(own)}", "—", "—"),
        Row("Alert: calls per event", f"{calls_figure} (a covered call; an uncovered one the same; the other copy "
            "of a call: dynamodb 2, no Slack call; a grant's first use: dynamodb 4, slack 2)", "AWS ≤ 2, Slack 1",
            met(sum(v for k, v in w.calls().items() if not k.startswith("slack.")) <= 2 * n_events)),
        Row("Alert, Lambda-like process: throughput over HTTP (moto server)",
            f"{lam_rate:.0f} events/s ({lam['timed']} events; fresh process with only the app, moto server and "
            f"Slack stand-in over loopback HTTP, no other grants); {_split(lam)}", f"≥ {GOAL_PER_SECOND}/s",
            met(lam_rate >= GOAL_PER_SECOND)),
        dyn_row,
        Row("Alert: peak memory (Lambda-like process)",
            f"heap peak +{lam['peak_bytes'] / 2**20:.2f} MB while handling {lam['memory_events']} events "
            f"(tracemalloc), {lam['retained_bytes'] / lam['memory_events'] / 1024:.2f} KB kept per event after gc; "
            f"RSS {lam['rss_before_mb']:.0f} → {lam['rss_after_mb']:.0f} MB", "< 0.5 KB kept per event",
            met(lam["retained_bytes"] / lam["memory_events"] < 512)),
        Row("Alert burst: 1,000 calls in one minute",
            f"{size}{b['recorded']}/{b['n']} recorded, {b['shown']} shown once each ({b['own']} own alerts, "
            f"{b['digests']} digests; {b['uncovered']} uncovered, {b['named']} named); #security: "
            f"{b['posts']} posts + {b['updates']} updates ({b['in_minute']} in the minute, at most {b['busiest']} "
            f"in any second), {b['refused']} refused with 429; calls per event: "
            f"{_per_event(b['calls'], b['n'])}; {b['seconds']:.1f} s on moto in-process ({b['n'] / b['seconds']:.0f}/s)",
            "all recorded, each shown once, ≤ ~60 writes/min", met(burst_ok)),
    ]
