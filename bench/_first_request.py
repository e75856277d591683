"""A fresh process's first request, as a cold Lambda handles it (run as a script, not imported).

The parent (bench/coldstart.py) runs moto as a server and the Slack stand-in, seeds
them, and starts this script with the environment pointing at both, with
``AWS_LAMBDA_FUNCTION_NAME`` set (so deferred work is one async ``lambda:Invoke``, as
deployed). Nothing heavy is imported before the clock starts, and the request is
handed to ``app.app(event, context)`` as the Lambda runtime does (an API Gateway proxy
event): ``chalice.test.Client`` would import botocore (through chalice.awsclient)
before the first request and hide that cost. Prints one line: ``BENCH_RESULT {json}``.
"""

import time

T_START = time.perf_counter()
CPU_START = time.process_time()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("BENCH_CODE_DIR"):
    # from the unpacked deployment zip: its directory first (as /var/task), then only what the
    # Lambda runtime provides (BENCH_RUNTIME_DIR); this checkout last, for local.slack_client only
    sys.path[:0] = [os.environ["BENCH_CODE_DIR"], os.environ["BENCH_RUNTIME_DIR"]]
    sys.path.append(ROOT)
else:
    sys.path.insert(0, ROOT)

# Slack's side of the request; it imports only what signing needs (hashlib, hmac, json, time,
# urllib.parse, uuid), so the app's import below is timed as a cold Lambda's.
from local import slack_client  # noqa: E402


class Context:
    """The parts of the Lambda context object the app reads."""

    function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "drawbridge-dev")
    memory_limit_in_mb = 512

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def api_gateway_event(path: str, body: str) -> dict:
    """A signed Slack form POST as API Gateway (REST, proxy integration) hands it to Lambda."""
    headers = {**slack_client.sign(body, os.environ["BENCH_SIGNING_SECRET"]),
               "Host": "example.execute-api.amazonaws.com",
               "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
    return {
        "resource": path, "path": path, "httpMethod": "POST", "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": None, "stageVariables": None, "body": body, "isBase64Encoded": False,
        "requestContext": {"resourcePath": path, "httpMethod": "POST", "path": f"/api{path}", "stage": "api",
                           "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "203.0.113.7"}},
    }


def rss_mb() -> float:
    """Current resident set size (Linux), MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    who = json.loads(os.environ["BENCH_SLASH_USER"])  # {"user_id": ..., "user_name": ...}
    c0, t0 = time.process_time(), time.perf_counter()
    import app  # noqa: PLC0415 - the point: the app's own import, timed

    c_import, t_import = time.process_time(), time.perf_counter()
    rss_import = rss_mb()
    texts, times, cpus = [], [], []
    # BENCH_SKIP_COMMANDS: the alert benchmark on an emulator without transactions (dynalite)
    commands = () if os.environ.get("BENCH_SKIP_COMMANDS") else (os.environ["BENCH_FIRST_TEXT"],
                                                                 os.environ["BENCH_SECOND_TEXT"])
    if not commands:
        times, cpus = [0.0, 0.0], [0.0, 0.0]
    for text in commands:
        event = api_gateway_event("/slack/commands", slack_client.slash_body(text=text, **who))  # fresh trigger id
        c, t = time.process_time(), time.perf_counter()
        resp = app.app(event, Context())
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        if resp.get("statusCode") != 200:
            raise SystemExit(f"HTTP {resp.get('statusCode')}: {resp.get('body')!r}")
        texts.append(json.loads(resp["body"])["text"])
    import gc  # noqa: PLC0415

    t = time.perf_counter()
    gc.collect()  # what one full collection of a warm app process costs (a pause any request may meet)
    gc_full = time.perf_counter() - t
    result = {
        "gc_full": gc_full,
        "startup_to_main": t0 - T_START,
        "import_app": t_import - t0,
        "cpu_import_app": c_import - c0,
        "cpu_first_command": cpus[0],
        "cpu_second_command": cpus[1],
        "app_file": app.__file__,
        "first_command": times[0],
        "second_command": times[1],
        "texts": texts,
        "rss_after_import_mb": rss_import,
        "rss_mb": rss_mb(),  # (not ru_maxrss: a forked child inherits its parent's high-water mark)
        "modules": len(sys.modules),
    }
    if os.environ.get("BENCH_ALERT_EVENTS"):
        result["alerts"] = alerts(app, os.environ["BENCH_ALERT_EVENTS"], int(os.environ["BENCH_ALERT_TIMED"]))
    sys.stdout.flush()
    print("BENCH_RESULT " + json.dumps(result), flush=True)


def alerts(app, path: str, timed: int) -> dict:
    """Events through ``app.on_role_assumed`` as Lambda calls it: a timed pass, then a
    tracemalloc pass for what the process keeps per event (nothing else lives here)."""
    import gc  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    with open(path) as fh:
        events = json.load(fh)
    warm, rest = events[:10], events[10:]
    timed_events, memory_events = rest[:timed], rest[timed:]

    def handle(batch):
        for event in batch:
            out = app.on_role_assumed(event, Context())
            if not out.get("posted") or not out.get("request_id"):
                raise SystemExit(f"event not alerted as covered: {out}")

    handle(warm)
    meter = _Meter()
    t = time.perf_counter()
    with meter:
        handle(timed_events)
    seconds = time.perf_counter() - t
    gc.collect()
    rss0 = rss_mb()
    tracemalloc.start()
    gc.collect()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    handle(memory_events)
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"timed": len(timed_events), "seconds": seconds, "memory_events": len(memory_events),
            "aws_seconds": meter.aws_seconds, "slack_seconds": meter.slack_seconds, "calls": meter.calls,
            "retained_bytes": after - before, "peak_bytes": peak - before,
            "rss_before_mb": rss0, "rss_after_mb": rss_mb()}


class _Meter:
    """Time and count AWS (botocore ``_make_api_call``) and Slack (slack-sdk ``api_call``)
    calls while open: where a Lambda-like process's time goes (the emulator's time is in
    the AWS figure: it answers over loopback HTTP)."""

    def __init__(self) -> None:
        self.aws_seconds = self.slack_seconds = 0.0
        self.calls: dict[str, int] = {}

    def __enter__(self):
        import botocore.client  # noqa: PLC0415
        import slack_sdk.web.base_client  # noqa: PLC0415

        self._aws = botocore.client.BaseClient._make_api_call
        self._slack = slack_sdk.web.base_client.BaseClient.api_call
        meter, aws, slack = self, self._aws, self._slack

        def timed_aws(client, operation, params):
            t = time.perf_counter()
            try:
                return aws(client, operation, params)
            finally:
                meter.aws_seconds += time.perf_counter() - t
                key = f"{client.meta.service_model.service_name}.{operation}"
                meter.calls[key] = meter.calls.get(key, 0) + 1

        def timed_slack(client, method, **kwargs):
            t = time.perf_counter()
            try:
                return slack(client, method, **kwargs)
            finally:
                meter.slack_seconds += time.perf_counter() - t
                meter.calls[f"slack.{method}"] = meter.calls.get(f"slack.{method}", 0) + 1

        botocore.client.BaseClient._make_api_call = timed_aws
        slack_sdk.web.base_client.BaseClient.api_call = timed_slack
        return self

    def __exit__(self, *exc) -> None:
        import botocore.client  # noqa: PLC0415
        import slack_sdk.web.base_client  # noqa: PLC0415

        botocore.client.BaseClient._make_api_call = self._aws
        slack_sdk.web.base_client.BaseClient.api_call = self._slack


if __name__ == "__main__":
    main()
