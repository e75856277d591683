"""Sweep scaling: ending a batch of expired grants must not slow down as history grows, and
what a sweep run costs IAM must not grow with the live grants.

One stack, history grown in place (1k -> 10k -> 100k ended requests, written as
final-state items: no index keys, as the store writes them). Before each timed sweep,
a fresh batch of grants that expired a minute ago is added: table items, a card in
Slack, and the real IAM policy attached to each grantee, so the sweep does the real
removal. 50 other grants stay live throughout (with their policies), so every timed
sweep also runs reconcile's rotation over them; the clock stands at 14:15:00, a quarter
hour (where the deep pass the rotation replaced used to ask IAM about every live grant).
The timed part is one invocation of the ``sweep`` handler, which runs its jobs
in-process (as the deployed sweep does).

The cost per run by live grants: a stack per size (1, 50, 500 live grants, each with its
policy), one sweep per minute at the minute, its AWS calls counted: every minute of an
hour for 1 and 50 grants, the quarter hours and the minutes either side of them for 500
(moto takes seconds to list 500 policies and query the table 27 times).

moto's costs grow with the table where DynamoDB's do not (a GSI query scans every
item in Python; see harness._cheap_moto for the two
artefacts the benchmarks remove), so the time spent inside
moto's request handling is reported too, and the goal is judged on the time without
it: Drawbridge's code, botocore on the client side and the Slack calls. The number
of AWS calls (each a flat-latency call on real DynamoDB/IAM) is the other half.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from . import data
from .harness import TABLE, Row, fmt_counts, met, ms, settle, stack

GOAL_RATIO = 1.5
#: the timed sweeps' clock: a quarter hour
SWEEP_AT = datetime(2026, 11, 12, 14, 15, tzinfo=timezone.utc)
#: grants live throughout the history benchmark (the rotation's work in each timed sweep)
OTHER_LIVE = 50
#: the hour the per-run costs are counted over
HOUR = datetime(2026, 11, 12, 15, 0, tzinfo=timezone.utc)
#: the quarter hours and the minutes either side
AROUND_QUARTERS = [0, 1, 14, 15, 16, 29, 30, 31, 44, 45, 46, 59]


def row_names() -> list[str]:
    return ["Sweep time ending expired grants, by history size",
            "Sweep time ratio, largest / smallest history",
            "Sweep calls (AWS and Slack), smallest / largest history",
            "Sweep: writing the history (set-up, not timed)",
            "Sweep IAM calls per run, by live grants (min / median / max over the minutes)",
            "Sweep holders verified per run, and minutes per pass over every live grant",
            "Sweep DynamoDB calls per run, by live grants (min / median / max over the minutes)"]


def _expiring(st, n: int, now: datetime, serial0: int) -> None:
    from chalicelib.adapters.slack_notifier import SlackNotifier
    from chalicelib.adapters.store import DynamoStore
    from chalicelib import wiring

    reqs = list(data.active(n, now, expires_at=now - timedelta(minutes=1), first_person=20_000 + serial0,
                            serial0=serial0))
    data.write(st.dynamodb(), TABLE, reqs)
    data.grant_in_iam(st.iam(), st.catalog.bastion_account_id, reqs)
    store = DynamoStore(st.dynamodb(), TABLE)
    s = wiring.settings()
    notifier = SlackNotifier(wiring.slack_client(s.bot_token, s.slack_api_url))
    for req in reqs:
        channel, ts = notifier.post(st.catalog.approvals_channel, f"card {req.request_id}", None,
                                    "access_granted", {"request_id": req.request_id})
        store.save_card(req.request_id, channel, ts)


def _timed_sweep(st) -> tuple[float, float, object, dict]:
    settle()
    report, dt, w = st.measure(st.sweep)
    return dt, w.moto_seconds, w, report


def run(smoke: bool) -> list[Row]:
    return _history(smoke) + _per_run(smoke)


def _history(smoke: bool) -> list[Row]:
    import time_machine

    sizes = [10, 100] if smoke else [1_000, 10_000, 100_000]
    expiring = 10 if smoke else 100
    repeats = 1 if smoke else 3
    results = []  # (history size, seconds, seconds inside moto, window)
    write_seconds = 0.0
    with time_machine.travel(SWEEP_AT, tick=False), stack(in_lambda=False) as st:
        now = SWEEP_AT
        people = [(p.key, p.slack_user, p.iam_user) for p in st.catalog.people.values()]
        others = list(data.active(OTHER_LIVE, now, expires_at=now + timedelta(days=2), first_person=40_000,
                                  serial0=8_000_000))
        data.write(st.dynamodb(), TABLE, others)
        data.grant_in_iam(st.iam(), st.catalog.bastion_account_id, others)
        # warm-up: the first sweep of a process builds clients and loads service models
        _expiring(st, 3, now, serial0=5_900_000)
        st.sweep()
        written = 0
        for round_no, size in enumerate(sizes):
            t0 = time.perf_counter()
            data.write(st.dynamodb(), TABLE, data.historical(size - written, now, catalog_people=people,
                                                             serial0=written))
            write_seconds += time.perf_counter() - t0
            written = size
            runs = []
            for rep in range(repeats):  # a fresh batch each time; the median run counts
                _expiring(st, expiring, now, serial0=6_000_000 + round_no * 10_000 + rep * 1_000)
                dt, moto_q, w, report = _timed_sweep(st)
                if report.get("expired_grants") != expiring or report.get("errors") or report.get("drift"):
                    raise RuntimeError(f"sweep at {size:,} history did not end {expiring} grants cleanly: {report}")
                left = st.iam().list_policies(Scope="Local", PathPrefix="/drawbridge/", MaxItems=1000)["Policies"]
                if len(left) != OTHER_LIVE:
                    raise RuntimeError(f"{len(left) - OTHER_LIVE} grant policies left in IAM after the sweep")
                runs.append((dt, moto_q, w))
            runs.sort(key=lambda r: r[0] - r[1])
            dt, moto_q, w = runs[len(runs) // 2]
            results.append((size, dt, moto_q, w))

    def label(n: int) -> str:
        return f"{n // 1000}k" if n >= 1000 else str(n)

    figure = " · ".join(f"{label(n)}: {ms(dt - q)} ms (+ {ms(q)} in moto)" for n, dt, q, _ in results)
    first, last = results[0], results[-1]
    ratio_wall = last[1] / first[1]
    ratio = (last[1] - last[2]) / (first[1] - first[2])
    calls_first, calls_last = first[3].calls(), last[3].calls()
    same_calls = calls_first == calls_last
    return [
        Row("Sweep time ending expired grants, by history size",
            f"{expiring} grants ended (median of {repeats}); {figure}", "flat", met(ratio <= GOAL_RATIO)),
        Row("Sweep time ratio, largest / smallest history",
            f"{ratio:.2f}× ({label(last[0])} / {label(first[0])}, without moto's time; with it {ratio_wall:.2f}×)",
            f"≤ {GOAL_RATIO}×", met(ratio <= GOAL_RATIO)),
        Row("Sweep calls (AWS and Slack), smallest / largest history",
            f"{sum(calls_first.values())} / {sum(calls_last.values())}: {fmt_counts(calls_last)} "
            f"(at {SWEEP_AT:%H:%M}, a quarter hour, with {OTHER_LIVE} other live grants: the rotation runs)",
            "equal", met(same_calls)),
        Row("Sweep: writing the history (set-up, not timed)",
            f"{label(sizes[-1])} items in {write_seconds:.0f} s (batch_write_item to moto in-process)",
            "—", "—"),
    ]


def _costs(n: int, minutes: list[int]) -> list[tuple[Counter, dict]]:
    """A stack with ``n`` live grants (policies attached); a sweep at each of ``minutes``
    past HOUR: (its AWS calls, its report)."""
    import time_machine

    out = []
    with time_machine.travel(HOUR, tick=False) as clock, stack(in_lambda=False) as st:
        live = list(data.active(n, HOUR, expires_at=HOUR + timedelta(days=1), first_person=30_000,
                                serial0=7_000_000))
        data.write(st.dynamodb(), TABLE, live)
        data.grant_in_iam(st.iam(), st.catalog.bastion_account_id, live)
        for m in minutes:
            clock.move_to(HOUR + timedelta(minutes=m))
            report, _, w = st.measure(st.sweep)
            if report.get("drift") or report.get("errors"):
                raise RuntimeError(f"a consistent world's sweep at :{m:02d} with {n} live grants: {report}")
            out.append((w.aws, report))
    return out


def _spread(values: list[int]) -> str:
    return f"{min(values)} / {statistics.median(values):g} / {max(values)}"


def _per_run(smoke: bool) -> list[Row]:
    from chalicelib.usecases.sweep import VERIFY_CAP, VERIFY_PERIOD

    plan = ([(1, [0, 15]), (5, [0, 15]), (60, [14, 15])] if smoke else
            [(1, list(range(60))), (50, list(range(60))), (500, AROUND_QUARTERS)])
    results = {n: _costs(n, minutes) for n, minutes in plan}

    def service_calls(counts: Counter, service: str) -> int:
        return sum(k for op, k in counts.items() if op.startswith(service + "."))

    iam = {n: [service_calls(c, "iam") for c, _ in runs] for n, runs in results.items()}
    ddb = {n: [service_calls(c, "dynamodb") for c, _ in runs] for n, runs in results.items()}
    which = "; ".join(f"{n}: {'every minute of an hour' if len(m) == 60 else ', '.join(f':{x:02d}' for x in m)}"
                      for n, m in plan)
    per_op = fmt_counts(results[plan[-1][0]][0][0])
    iam_ok = all(max(v) <= 1 + VERIFY_CAP and min(v) == max(v) for v in iam.values())
    verified = {n: sorted({(r.get("verified"), r.get("verify_period")) for _, r in runs})
                for n, runs in results.items()}
    hour = int(VERIFY_PERIOD.total_seconds() // 60)
    pass_ok = all(p <= hour for pairs in verified.values() for _, p in pairs)
    return [
        Row("Sweep IAM calls per run, by live grants (min / median / max over the minutes)",
            " · ".join(f"{n}: {_spread(v)}" for n, v in iam.items()) + f" (minutes: {which})",
            f"≤ {1 + VERIFY_CAP} (1 + VERIFY_CAP), the same at every minute", met(iam_ok)),
        Row("Sweep holders verified per run, and minutes per pass over every live grant",
            " · ".join(f"{n}: " + ", ".join(f"{v} a run, a pass in {p} min" for v, p in pairs)
                       for n, pairs in verified.items()),
            f"every live grant within {hour} min", met(pass_ok)),
        Row("Sweep DynamoDB calls per run, by live grants (min / median / max over the minutes)",
            " · ".join(f"{n}: {_spread(v)}" for n, v in ddb.items()) + f"; one run at {plan[-1][0]}: {per_op}",
            "flat", met(all(min(v) == max(v) for v in ddb.values()))),
    ]
