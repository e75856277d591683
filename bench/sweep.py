"""Sweep scaling: ending a batch of expired grants must not slow down as history grows.

One stack, history grown in place (1k -> 10k -> 100k ended requests, written as
final-state items: no index keys, as the store writes them). Before each timed sweep,
a fresh batch of grants that expired a minute ago is added: table items, a card in
Slack, and the real IAM policy attached to each grantee, so the sweep does the real
removal. The timed part is one invocation of the ``sweep`` handler, which runs its
jobs in-process (as the deployed sweep does).

moto's costs grow with the table where DynamoDB's do not (a GSI query scans every
item in Python; see harness._cheap_moto for the two
artefacts the benchmarks remove), so the time spent inside
moto's request handling is reported too, and the goal is judged on the time without
it: Drawbridge's code, botocore on the client side and the Slack calls. The number
of AWS calls (each a flat-latency call on real DynamoDB/IAM) is the other half.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from . import data
from .harness import TABLE, Row, fmt_counts, met, ms, settle, stack

GOAL_RATIO = 1.5


def row_names() -> list[str]:
    return ["Sweep time ending expired grants, by history size",
            "Sweep time ratio, largest / smallest history",
            "Sweep calls (AWS and Slack), smallest / largest history",
            "Sweep: writing the history (set-up, not timed)"]


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
    sizes = [10, 100] if smoke else [1_000, 10_000, 100_000]
    expiring = 10 if smoke else 100
    repeats = 1 if smoke else 3
    results = []  # (history size, seconds, seconds inside moto, window)
    write_seconds = 0.0
    with stack(in_lambda=False) as st:
        now = datetime.now(timezone.utc).replace(microsecond=0)
        people = [(p.key, p.slack_user, p.iam_user) for p in st.catalog.people.values()]
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
                if report.get("expired_grants") != expiring or report.get("errors"):
                    raise RuntimeError(f"sweep at {size:,} history did not end {expiring} grants cleanly: {report}")
                left = st.iam().list_policies(Scope="Local", PathPrefix="/drawbridge/")["Policies"]
                if left:
                    raise RuntimeError(f"{len(left)} grant policies left in IAM after the sweep")
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
            f"{sum(calls_first.values())} / {sum(calls_last.values())}: {fmt_counts(calls_last)}",
            "equal", met(same_calls)),
        Row("Sweep: writing the history (set-up, not timed)",
            f"{label(sizes[-1])} items in {write_seconds:.0f} s (batch_write_item to moto in-process)",
            "—", "—"),
    ]
