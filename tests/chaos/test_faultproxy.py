"""local/faultproxy.py against a tiny local upstream: each kind of fault, the matching rules,
the seeded probabilities, the log, faults_off, and the real clients' view (boto3 on moto,
slack_sdk on the stand-in)."""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local.faultproxy import (FaultProxy, call_name, delay, drop, error, lose_response, slack_error,
                              throttle)


class Upstream:
    """Answers every request 200 {"ok": true, "n": <how many it has seen>} and remembers them."""

    def __init__(self):
        self.seen: list[tuple[str, str, dict, bytes]] = []
        self.lock = threading.Lock()
        upstream = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with upstream.lock:
                    upstream.seen.append((self.command, self.path, dict(self.headers), body))
                    n = len(upstream.seen)
                data = json.dumps({"ok": True, "n": n}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Upstream", "yes")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    u = Upstream()
    yield u
    u.close()


@pytest.fixture
def proxy(upstream):
    with FaultProxy(upstream.url, seed=1, name="test") as p:
        yield p


def post(proxy, path="/", body=b"", headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


DDB = {"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "application/x-amz-json-1.0",
       "Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20261112/us-east-1/dynamodb/aws4_request, ..."}
IAM = {"Content-Type": "application/x-www-form-urlencoded",
       "Authorization": "AWS4-HMAC-SHA256 Credential=AKIA/20261112/us-east-1/iam/aws4_request, ..."}


def test_calls_are_named_by_protocol():
    assert call_name("POST", "/", DDB, b"{}") == ("dynamodb", "GetItem")
    assert call_name("POST", "/", IAM, b"Action=CreatePolicy&Version=2010-05-08") == ("iam", "CreatePolicy")
    assert call_name("GET", "/?Action=GetCallerIdentity", {"Host": "sts.amazonaws.com"}, b"") == (
        "sts", "GetCallerIdentity")
    assert call_name("POST", "/api/chat.postMessage", {}, b"{}") == ("slack", "chat.postMessage")


def test_passes_through_untouched(proxy, upstream):
    status, headers, body = post(proxy, "/api/chat.postMessage", b'{"text": "hi"}',
                                 {"Content-Type": "application/json"})
    assert (status, json.loads(body), headers.get("X-Upstream")) == (200, {"ok": True, "n": 1}, "yes")
    assert upstream.seen[0][1] == "/api/chat.postMessage" and upstream.seen[0][3] == b'{"text": "hi"}'
    assert [d.action for d in proxy.log] == ["pass"] and proxy.injected() == []


def test_error_is_aws_shaped_and_not_forwarded(proxy, upstream):
    proxy.add("dynamodb:GetItem", error(500, code="InternalServerError"))
    proxy.add("iam:*", throttle())
    status, _, body = post(proxy, "/", b"{}", DDB)
    assert status == 500
    assert json.loads(body)["__type"] == "com.amazonaws.dynamodb.v20120810#InternalServerError"
    status, headers, body = post(proxy, "/", b"Action=ListPolicies", IAM)
    assert status == 400 and b"<Code>Throttling</Code>" in body and headers["Content-Type"] == "text/xml"
    assert upstream.seen == []
    assert [d.action for d in proxy.injected()] == ["error 500 InternalServerError", "throttle 429 Retry-After 1"]


def test_slack_errors(proxy, upstream):
    proxy.add("slack:chat.postMessage", slack_error("fatal_error"), count=1)
    proxy.add("slack:chat.postMessage", throttle(retry_after=3), count=1)
    proxy.add("slack:chat.postMessage", error(500), count=1)
    answers = [post(proxy, "/api/chat.postMessage") for _ in range(4)]
    assert [(s, json.loads(b)) for s, _, b in answers] == [
        (200, {"ok": False, "error": "fatal_error"}), (429, {"ok": False, "error": "ratelimited"}),
        (500, {"ok": False, "error": "internal_error"}), (200, {"ok": True, "n": 1})]
    assert answers[1][1]["Retry-After"] == "3"


def test_delay_then_forward(proxy, upstream):
    proxy.add("slack:*", delay(0.3))
    start = time.monotonic()
    status, _, _ = post(proxy, "/api/auth.test")
    assert status == 200 and time.monotonic() - start >= 0.3 and len(upstream.seen) == 1


@pytest.mark.parametrize("reset", [False, True])
def test_drop_closes_without_forwarding(proxy, upstream, reset):
    proxy.add("slack:*", drop(reset=reset), count=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        post(proxy, "/api/chat.postMessage")
    assert upstream.seen == []
    assert post(proxy, "/api/chat.postMessage")[0] == 200  # count=1: the next one passes


def test_lose_response_forwards_then_closes(proxy, upstream):
    proxy.add("slack:chat.postMessage", lose_response(), count=1)
    with pytest.raises(http.client.RemoteDisconnected):
        post(proxy, "/api/chat.postMessage", b'{"text": "once"}', {"Content-Type": "application/json"})
    assert len(upstream.seen) == 1  # the upstream acted
    (d,) = proxy.injected()
    assert d.action.startswith("lose_response") and d.status == 200


def test_probability_is_seeded_and_reproducible(upstream):
    def pattern(seed):
        with FaultProxy(upstream.url, seed=seed) as p:
            p.add("slack:*", error(500), probability=0.5)
            return [post(p, "/api/x")[0] for _ in range(20)]

    a, b, c = pattern(7), pattern(7), pattern(8)
    assert a == b and a != c and {500, 200} == set(a)


def test_count_skip_when_and_order(proxy, upstream):
    proxy.add("slack:chat.*", error(500), skip=1, count=2,
              when=lambda call: call.params().get("channel") == "C1")
    proxy.add("slack:*", slack_error("second_rule"), count=1)
    statuses = [post(proxy, "/api/chat.postMessage", json.dumps({"channel": ch}).encode(),
                     {"Content-Type": "application/json"})[0] for ch in ("C1", "C2", "C1", "C1", "C1")]
    # C1 #1 skipped -> the second rule fires (200 ok:false); C2 passes; C1 #2 and #3 fail; C1 #4 passes
    assert statuses == [200, 200, 500, 500, 200]
    assert [d.rule for d in proxy.injected()] == ["slack:*", "slack:chat.*", "slack:chat.*"]


def test_faults_off_and_on(proxy, upstream):
    proxy.add("slack:*", error(500))
    assert post(proxy, "/api/a")[0] == 500
    proxy.faults_off()
    assert post(proxy, "/api/a")[0] == 200
    proxy.faults_on()
    assert post(proxy, "/api/a")[0] == 500
    assert "fired 2" in proxy.report()


def test_dynamodb_transaction_token_answers_a_retry_like_dynamodb(proxy, upstream):
    """A lost answer to a TransactWriteItems: the retry (same ClientRequestToken) gets the first
    answer, and the upstream applies it once - as DynamoDB does, and moto does not."""
    headers = dict(DDB, **{"X-Amz-Target": "DynamoDB_20120810.TransactWriteItems"})
    body = json.dumps({"TransactItems": [], "ClientRequestToken": "tok-1"}).encode()
    proxy.add("dynamodb:TransactWriteItems", lose_response(), count=1)
    with pytest.raises(http.client.RemoteDisconnected):
        post(proxy, "/", body, headers)
    status, _, answer = post(proxy, "/", body, headers)
    assert status == 200 and json.loads(answer) == {"ok": True, "n": 1} and len(upstream.seen) == 1
    post(proxy, "/", body.replace(b"tok-1", b"tok-2"), headers)
    assert len(upstream.seen) == 2


def test_real_clients_see_real_failures(tmp_path):
    """boto3 (standard retries) on moto_server and slack_sdk's WebClient on the stand-in, through
    the proxy: a lost response is retried and applied twice by Slack; IAM errors surface."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from moto.server import ThreadedMotoServer
    from slack_sdk import WebClient
    from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

    from local.slack_standin import SlackStandin
    from tests.chaos.world import reset_moto

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        with FaultProxy(f"http://{host}:{port}", seed=3, name="aws") as aws, \
                SlackStandin("xoxb-t") as standin, FaultProxy(standin.url, name="slack") as slack:
            iam = boto3.client("iam", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id="AKIA1",
                               aws_secret_access_key="x", config=Config(retries={"mode": "standard",
                                                                                  "max_attempts": 2}))
            aws.add("iam:ListPolicies", error(500, code="ServiceFailure"))
            with pytest.raises(ClientError) as err:
                iam.list_policies(Scope="Local")
            assert err.value.response["Error"]["Code"] == "ServiceFailure"
            # botocore reads the client's max_attempts as retries when the config says so: 1 + 2
            assert len(aws.calls("iam:ListPolicies")) == 3
            aws.add("iam:CreateUser", drop(), count=1)
            iam.create_user(UserName="u1")  # the retry gets through
            assert [d.action for d in aws.calls("iam:CreateUser")] == ["drop (not forwarded)", "pass"]

            web = WebClient(token="xoxb-t", base_url=slack.url,
                            retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)])
            slack.add("slack:chat.postMessage", lose_response(), count=1)
            web.chat_postMessage(channel="C0APPROVE1", text="hello")
            assert [m.text for m in standin.messages("C0APPROVE1")] == ["hello", "hello"]
    finally:
        reset_moto(f"http://{host}:{port}")  # moto's state is global to the process
        moto.stop()
