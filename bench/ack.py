"""Ack latency of the two HTTP routes, as Lambda would see it, and the calls made before each ack.

One round = alice requests prod/admin, bob approves (intermediate), carol approves
(final), alice revokes. Each signed request goes through ``chalice.test.Client`` with
``AWS_LAMBDA_FUNCTION_NAME`` set, so ``handlers.defer`` hands the follow-up jobs to the
worker with one asynchronous ``lambda:Invoke`` (moto accepts and drops it): the ack
includes that call and excludes the deferred work. The stack keeps the jobs and runs
them through the ``worker`` handler after the timing, so the next step finds the
state it needs (card posted, grant in IAM, grant removed).
"""

from __future__ import annotations

import re
from collections import Counter

from .harness import Row, fmt_counts, median, met, ms, pct, settle, stack

KINDS = [
    ("request", "slash command `prod admin 1h …`"),
    ("approve_1", "intermediate approval (button)"),
    ("approve_2", "final approval (button)"),
    ("revoke", "slash command `revoke …`"),
]
GOAL_P99 = 0.150


def row_names() -> list[str]:
    names = [f"Ack latency p50 / p99: {label}" for _, label in KINDS]
    names += [f"Calls before the ack: {label}" for _, label in KINDS]
    names.append("IAM calls before any ack")
    return names


def _rid(body) -> str:
    m = re.search(r"req-\d{8}-[0-9a-f]{6}", (body or {}).get("text", ""))
    if not m:
        raise RuntimeError(f"no request id in the reply: {body!r}")
    return m.group(0)


def run(smoke: bool) -> list[Row]:
    rounds, warmup = (3, 1) if smoke else (60, 3)
    samples: dict[str, list[float]] = {k: [] for k, _ in KINDS}
    calls: dict[str, list[Counter]] = {k: [] for k, _ in KINDS}
    with stack(in_lambda=True) as st:
        for i in range(warmup + rounds):
            keep = i >= warmup
            if i == warmup:
                settle()

            def step(kind: str, fn):
                (status, body), dt, w = st.measure(fn)
                if status != 200:
                    raise RuntimeError(f"{kind}: HTTP {status} {body!r}")
                if keep:
                    samples[kind].append(dt)
                    calls[kind].append(w.calls())
                st.run_pending()  # outside the timing: what the async worker does
                return body

            body = step("request", lambda: st.command("alice", f"prod admin 1h bench round {i}"))
            rid = _rid(body)
            step("approve_1", lambda: st.approve("bob", rid))
            step("approve_2", lambda: st.approve("carol", rid))
            if st.store().get(rid).grant_status.value != "ACTIVE":
                raise RuntimeError(f"{rid} was not granted: {st.store().get(rid)}")
            body = step("revoke", lambda: st.command("alice", f"revoke {rid}"))
            if "Revoking" not in body.get("text", ""):
                raise RuntimeError(f"revoke refused: {body!r}")
            if st.store().get(rid).grant_status.value != "REVOKED":
                raise RuntimeError(f"{rid} was not revoked")

    rows = []
    for kind, label in KINDS:
        p50, p99 = median(samples[kind]), pct(samples[kind], 99)
        rows.append(Row(f"Ack latency p50 / p99: {label}",
                        f"{ms(p50)} / {ms(p99)} ms (n={len(samples[kind])})",
                        "p99 ≤ 150 ms", met(p99 <= GOAL_P99)))
    iam_total = 0
    for kind, label in KINDS:
        seen = calls[kind]
        same = all(c == seen[0] for c in seen)
        iam = sum(n for key, n in seen[-1].items() if key.startswith("iam."))
        iam_total += sum(n for c in seen for key, n in c.items() if key.startswith("iam."))
        figure = fmt_counts(seen[-1])
        if not any(key.startswith("slack.") for key in seen[-1]):
            figure += ", slack 0"
        figure += "" if same else " (varied between rounds)"
        rows.append(Row(f"Calls before the ack: {label}", figure, "0 IAM", met(iam == 0)))
    rows.append(Row("IAM calls before any ack", f"{iam_total} (in {sum(len(v) for v in calls.values())} acks)",
                    "0", met(iam_total == 0)))
    return rows
