"""Tests of scripts/local_gateway.py (the local API Gateway) and
scripts/dev_issuer.py, against a stub Lambda Invoke API: no Rust, no
cargo lambda.

run from the repository root:
  .tools/venv/bin/python -m unittest tests/gateway_test.py
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse as urllib_parse
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import yaml
from cryptography.hazmat.primitives import serialization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
sys.path.insert(0, SCRIPTS)
import dev_issuer  # noqa: E402
import local_gateway  # noqa: E402

AUDIENCE = "tests-audience"  # passed with --parameter: overrides the default
MAX_IN_FLIGHT = 8
INVOKE_TIMEOUT = 2  # seconds; the stub's "sleep" answers take longer
GOOD_CONTEXT = {"owner": "alice", "tokenId": "t1", "n": 1, "ok": True}

# A Tollgate-like template: a JWT-authorized API, open routes, and an
# exported authorize function.
TOLLGATE_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  JwtIssuer:
    Type: String
  JwtAudience:
    Type: String
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: Jwt
        Authorizers:
          Jwt:
            IdentitySource: $request.header.Authorization
            JwtConfiguration:
              issuer: !Ref JwtIssuer
              audience:
                - !Ref JwtAudience
  EchoFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: echo
    Properties:
      Events:
        Item:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: "/items/{id}"}
        Scoped:
          Type: HttpApi
          Properties:
            ApiId: !Ref Api
            Method: GET
            Path: /scoped
            Auth: {Authorizer: Jwt, AuthorizationScopes: [read]}
        OpenProxy:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: ANY, Path: "/open/{proxy+}", Auth: {Authorizer: NONE}}
        OpenName:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: "/open/{name}", Auth: {Authorizer: NONE}}
        OpenExact:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /open/exact, Auth: {Authorizer: NONE}}
        OpenExactAny:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: any, Path: /open/exact, Auth: {Authorizer: NONE}}
  SlowFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: slow
    Properties:
      Events:
        Slow:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /slow, Auth: {Authorizer: NONE}}
  FailFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: fails
    Properties:
      Events:
        Fails:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /fails, Auth: {Authorizer: NONE}}
  ShapesFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: shapes
    Properties:
      Events:
        Shapes:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: ANY, Path: "/shapes/{kind}", Auth: {Authorizer: NONE}}
  AuthorizeFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: authz
    Properties: {}
Outputs:
  AuthorizerArn:
    Value: !GetAtt AuthorizeFunction.Arn
    Export:
      Name: !Sub "${AWS::StackName}-AuthorizerArn"
"""

# An app protected by that authorizer through Fn::ImportValue.
APP_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  TollgateStackName:
    Type: String
    Default: tollgate
Resources:
  AppApi:
    Type: AWS::Serverless::HttpApi
    Properties:
      Auth:
        DefaultAuthorizer: NoCache
        Authorizers:
          NoCache:
            FunctionArn:
              Fn::ImportValue: !Sub "${TollgateStackName}-AuthorizerArn"
            AuthorizerPayloadFormatVersion: "2.0"
            EnableSimpleResponses: true
            Identity:
              Headers: [Authorization]
              ReauthorizeEvery: 0
          Cached:
            FunctionArn:
              Fn::ImportValue: !Sub "${TollgateStackName}-AuthorizerArn"
            AuthorizerPayloadFormatVersion: "2.0"
            EnableSimpleResponses: true
            Identity:
              Headers: [Authorization]
              ReauthorizeEvery: 2
          Policy:
            FunctionArn: !ImportValue
              Fn::Sub: "${TollgateStackName}-AuthorizerArn"
            AuthorizerPayloadFormatVersion: "2.0"
            Identity:
              Headers: [Authorization]
              ReauthorizeEvery: 0
  AppFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: echo
    Properties:
      Events:
        NoCache:
          Type: HttpApi
          Properties: {ApiId: !Ref AppApi, Method: ANY, Path: "/app/nocache/{proxy+}"}
        Cached:
          Type: HttpApi
          Properties: {ApiId: !Ref AppApi, Method: GET, Path: /app/cached, Auth: {Authorizer: Cached}}
        Policy:
          Type: HttpApi
          Properties: {ApiId: !Ref AppApi, Method: GET, Path: "/app/policy/{x}", Auth: {Authorizer: Policy}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log_path, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited: {read(log_path)}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the gateway did not listen: {read(log_path)}")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def read(path):
    with open(path) as f:
        return f.read()


# --------------------------------------------------------------------------
# The stub Lambda Invoke API.

class Stub:
    """Records every event per function, counts invocations in flight, and
    answers as the functions of the test templates would."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = defaultdict(list)
        self.in_flight = defaultdict(int)
        self.peak = defaultdict(int)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                m = re.fullmatch(r"/2015-03-31/functions/([^/]+)/invocations", self.path)
                event = json.loads(self.rfile.read(int(self.headers["content-length"])))
                name = m.group(1)
                with stub.lock:
                    stub.events[name].append(event)
                    stub.in_flight[name] += 1
                    stub.peak[name] = max(stub.peak[name], stub.in_flight[name])
                try:
                    payload, headers = stub.answer(name, event)
                finally:
                    with stub.lock:
                        stub.in_flight[name] -= 1
                try:
                    self.send_response(200)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the gateway gave up on this one (its timeout)
                # "hangup": close the kept-alive connection without a word,
                # as a restarted `cargo lambda watch` does.
                self.close_connection = (event.get("pathParameters") or {}).get("kind") == "hangup"

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def count(self, name):
        with self.lock:
            return len(self.events[name])

    def events_at(self, name, raw_path):
        with self.lock:
            return [e for e in self.events[name] if e.get("rawPath") == raw_path]

    def answer(self, name, event):
        as_json = lambda v: (json.dumps(v).encode(), [])  # noqa: E731
        if name == "echo":
            return as_json({"statusCode": 200, "headers": {"content-type": "application/json"},
                            "body": json.dumps(event)})
        if name == "slow":
            time.sleep(int((event.get("queryStringParameters") or {}).get("ms", "50")) / 1000)
            return as_json({"statusCode": 200, "body": "ok"})
        if name == "fails":
            return (json.dumps({"errorType": "Panic", "errorMessage": "boom"}).encode(),
                    [("X-Amz-Function-Error", "Unhandled")])
        if name == "shapes":
            return self.shape(event["pathParameters"]["kind"])
        if name == "authz":
            return as_json(self.authorize(event))
        raise AssertionError(f"unknown function {name}")

    @staticmethod
    def shape(kind):
        if kind in ("object", "hangup"):
            return json.dumps({"a": 1, "b": [True, None]}).encode(), []
        if kind == "string":
            return json.dumps("hi there").encode(), []
        if kind == "garbage":
            return b"this is not json", []
        if kind == "sleep":
            time.sleep(INVOKE_TIMEOUT + 1.5)
            return json.dumps({"statusCode": 200, "body": "late"}).encode(), []
        if kind == "nobody":
            return json.dumps({"statusCode": 204, "headers": {"x-a": "1"}}).encode(), []
        # "full": every field of the payload 2.0 answer.
        return json.dumps({
            "statusCode": 201,
            "headers": {"content-type": "application/octet-stream", "x-one": "1",
                        "connection": "close", "transfer-encoding": "chunked",
                        "content-length": "9999", "x-num": 7},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "cookies": ["c1=v1; Path=/", "c2=v2"],
            "isBase64Encoded": True,
            "body": base64.b64encode(b"\x00\xffbinary").decode(),
        }).encode(), []

    @staticmethod
    def authorize(event):
        identity = (event.get("identitySource") or [""])[0]
        if identity == "Bearer broken":
            return {"isAuthorized": "yes"}
        if identity == "Bearer nested":
            return {"isAuthorized": True, "context": {"deep": {"a": 1}}}
        if identity == "Bearer slow":
            time.sleep(INVOKE_TIMEOUT + 1.5)
        allowed = identity.startswith("Bearer good")
        context = GOOD_CONTEXT if allowed else {"reason": "REVOKED"}
        if not event["rawPath"].startswith("/app/policy/"):
            return {"isAuthorized": allowed, "context": context}
        resource = ("arn:aws:execute-api:us-east-1:123456789012:appapi/$default/POST/elsewhere"
                    if identity.startswith("Bearer good-elsewhere") else
                    "arn:aws:execute-api:*:123456789012:appapi/$default/GET/app/policy/*")
        return {"principalId": "alice", "context": context, "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow" if allowed else "Deny",
                           "Resource": [resource]}]}}


# --------------------------------------------------------------------------

class Response:
    def __init__(self, resp, body):
        self.status, self.body = resp.status, body
        self.headers = resp.getheaders()

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name), None)

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name]

    def json(self):
        return json.loads(self.body)


class GatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # Class cleanups run even when setUpClass fails half-way.
        cls.tmp = tempfile.mkdtemp(prefix="gateway-test-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.key = os.path.join(cls.tmp, "run", "dev-issuer.pem")
        cls.other_key = os.path.join(cls.tmp, "other.pem")
        subprocess.run([sys.executable, os.path.join(SCRIPTS, "dev_issuer.py"), "init", cls.key],
                       check=True, capture_output=True)
        dev_issuer.init_key(cls.other_key)
        cls.tollgate = os.path.join(cls.tmp, "tollgate.yaml")
        cls.app = os.path.join(cls.tmp, "app.yaml")
        with open(cls.tollgate, "w") as f:
            f.write(TOLLGATE_TEMPLATE)
        with open(cls.app, "w") as f:
            f.write(APP_TEMPLATE)
        cls.stub = Stub()
        cls.addClassCleanup(cls.stub.close)
        cls.port, cls.log = cls.start_gateway("main", "--max-in-flight", str(MAX_IN_FLIGHT),
                                              "--invoke-timeout", str(INVOKE_TIMEOUT))

    @classmethod
    def start_gateway(cls, name, *extra):
        port = free_port()
        log = os.path.join(cls.tmp, f"gateway-{name}.log")
        # The default stack names (tollgate, tollgate-demo) are what the app
        # template's TollgateStackName default expects.
        with open(log, "w") as stderr:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, os.path.join(SCRIPTS, "local_gateway.py"), "--port", str(port),
                 "--invoke-port", str(cls.stub.port), "--template", cls.tollgate, "--template", cls.app,
                 "--issuer-key", cls.key, "--parameter", f"JwtAudience={AUDIENCE}", *extra],
                stdout=subprocess.DEVNULL, stderr=stderr)
        cls.addClassCleanup(stop, proc)
        wait_port(port, proc, log)
        return port, log

    # ---- helpers

    def request(self, method, path, headers=(), body=None, port=None, chunked=False):
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in headers:
                conn.putheader(k, v)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for piece in body:
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.send(b"0\r\n\r\n")
            else:
                if body is not None:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
            resp = conn.getresponse()
            return Response(resp, resp.read())
        finally:
            conn.close()

    def echo(self, method, path, headers=(), body=None):
        """The event the echo function received."""
        r = self.request(method, path, headers, body)
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def token(self, **kw):
        kw.setdefault("aud", AUDIENCE)
        return dev_issuer.mint(kw.pop("key", self.key), kw.pop("sub", "alice"), **kw)

    def assert_message(self, r, status, message):
        self.assertEqual(r.status, status, r.body)
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertEqual(r.json(), {"message": message})

    # ---- the integration event

    def test_event_shape(self):
        e = self.echo("GET", "/open/a%20b/c?x=1&y=2&x=3&empty=&sp=a+b%2Fc", [
            ("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "s=1; t=2"), ("User-Agent", "tests/1"),
            ("X-CamelCase", "v")])
        self.assertEqual(e["version"], "2.0")
        self.assertEqual(e["routeKey"], "ANY /open/{proxy+}")
        self.assertEqual(e["rawPath"], "/open/a%20b/c")
        self.assertEqual(e["rawQueryString"], "x=1&y=2&x=3&empty=&sp=a+b%2Fc")
        self.assertEqual(e["queryStringParameters"], {"x": "1,3", "y": "2", "empty": "", "sp": "a b/c"})
        self.assertEqual(e["pathParameters"], {"proxy": "a b/c"})
        self.assertEqual(e["cookies"], ["s=1", "t=2"])
        h = e["headers"]
        self.assertTrue(all(k == k.lower() for k in h), h)
        self.assertNotIn("cookie", h)
        self.assertEqual(h["x-multi"], "a,b")
        self.assertEqual(h["x-camelcase"], "v")
        self.assertEqual(h["user-agent"], "tests/1")
        self.assertNotIn("body", e)
        self.assertIs(e["isBase64Encoded"], False)
        ctx = e["requestContext"]
        self.assertEqual(ctx["accountId"], "123456789012")
        self.assertEqual(ctx["apiId"], "api")
        self.assertEqual(ctx["domainName"], "127.0.0.1")
        self.assertEqual(ctx["stage"], "$default")
        self.assertEqual(ctx["routeKey"], "ANY /open/{proxy+}")
        self.assertEqual(ctx["http"], {"method": "GET", "path": "/open/a%20b/c", "protocol": "HTTP/1.1",
                                       "sourceIp": "127.0.0.1", "userAgent": "tests/1"})
        self.assertRegex(ctx["time"], r"^\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000$")
        self.assertLess(abs(ctx["timeEpoch"] / 1000 - time.time()), 60)
        self.assertNotIn("authorizer", ctx)

    def test_no_query_no_cookies_no_path_parameters(self):
        e = self.echo("GET", "/open/exact")
        self.assertEqual(e["rawQueryString"], "")
        for absent in ("queryStringParameters", "cookies", "pathParameters", "body"):
            self.assertNotIn(absent, e)

    def test_request_ids_are_unique(self):
        ids = [self.echo("GET", "/open/exact")["requestContext"]["requestId"] for _ in range(5)]
        self.assertEqual(len(set(ids)), 5, ids)

    def test_non_utf8_body_is_base64(self):
        raw = b"\xff\xfe\x00 not utf-8 \xc3"
        for ctype in ("text/plain", "application/json", None):
            headers = [("Content-Type", ctype)] if ctype else []
            e = self.echo("POST", "/open/upload", headers, raw)
            self.assertIs(e["isBase64Encoded"], True, ctype)
            self.assertEqual(base64.b64decode(e["body"]), raw)

    def test_binary_content_type_is_base64(self):
        e = self.echo("PUT", "/open/upload", [("Content-Type", "application/octet-stream")], b"plain ascii")
        self.assertIs(e["isBase64Encoded"], True)
        self.assertEqual(base64.b64decode(e["body"]), b"plain ascii")

    def test_text_bodies_go_as_text(self):
        doc = '{"name": "ünïcode", "n": 1}'
        for ctype in ("application/json", "application/merge-patch+json; charset=utf-8",
                      "application/x-www-form-urlencoded", "text/csv", "application/problem+xml"):
            e = self.echo("POST", "/open/upload", [("Content-Type", ctype)], doc.encode())
            self.assertIs(e["isBase64Encoded"], False, ctype)
            self.assertEqual(e["body"], doc)

    def test_chunked_body(self):
        e = self.echo_chunked([b"hello ", b"chunked ", b"world"])
        self.assertEqual(e["body"], "hello chunked world")

    def echo_chunked(self, pieces):
        r = self.request("POST", "/open/upload", [("Content-Type", "text/plain")], pieces, chunked=True)
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def test_body_over_10_mb_is_413(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.putrequest("POST", "/open/upload")
        conn.putheader("Content-Length", str(10 * 1024 * 1024 + 1))
        conn.endheaders()
        resp = conn.getresponse()
        r = Response(resp, resp.read())
        conn.close()
        self.assert_message(r, 413, "Request Entity Too Large")

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            for _ in range(3):
                conn.request("GET", "/open/exact")
                resp = conn.getresponse()
                self.assertEqual(resp.status, 200)
                resp.read()
        finally:
            conn.close()

    # ---- routing

    def test_route_specificity(self):
        cases = [
            ("GET", "/open/exact", "GET /open/exact", None),
            ("DELETE", "/open/exact", "ANY /open/exact", None),
            ("GET", "/open/other", "GET /open/{name}", {"name": "other"}),
            ("POST", "/open/other", "ANY /open/{proxy+}", {"proxy": "other"}),
            ("GET", "/open/a/b", "ANY /open/{proxy+}", {"proxy": "a/b"}),
            ("QUERY", "/open/x", "ANY /open/{proxy+}", {"proxy": "x"}),
            ("PROPFIND", "/open/exact", "ANY /open/exact", None),
        ]
        for method, path, key, params in cases:
            e = self.echo(method, path)
            self.assertEqual((e["routeKey"], e.get("pathParameters")), (key, params), f"{method} {path}")
            self.assertEqual(e["requestContext"]["http"]["method"], method)

    def test_unknown_route_is_404(self):
        for method, path in [("GET", "/nowhere"), ("POST", "/items/1"), ("GET", "/open"),
                             ("GET", "/open/"), ("PROPFIND", "/"), ("GET", "/items/1/extra")]:
            self.assert_message(self.request(method, path), 404, "Not Found")

    def test_head_has_no_body(self):
        r = self.request("HEAD", "/open/exact")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertGreater(int(r.header("content-length")), 0)

    # ---- function answers

    def test_full_answer_mapping(self):
        r = self.request("GET", "/shapes/full")
        self.assertEqual(r.status, 201)
        self.assertEqual(r.body, b"\x00\xffbinary")
        self.assertEqual(r.header("content-length"), str(len(b"\x00\xffbinary")))
        self.assertEqual(r.header("content-type"), "application/octet-stream")
        self.assertEqual(r.header("x-num"), "7")
        self.assertEqual(r.header_all("x-many"), ["a", "b"])
        self.assertEqual(r.header_all("set-cookie"), ["c1=v1; Path=/", "c2=v2"])
        self.assertIsNone(r.header("transfer-encoding"))
        self.assertNotEqual(r.header("connection"), "close")

    def test_inferred_answers(self):
        r = self.request("GET", "/shapes/object")
        self.assertEqual((r.status, r.header("content-type")), (200, "application/json"))
        self.assertEqual(r.json(), {"a": 1, "b": [True, None]})
        r = self.request("GET", "/shapes/string")
        self.assertEqual((r.status, r.body), (200, b"hi there"))

    def test_no_content(self):
        r = self.request("GET", "/shapes/nobody")
        self.assertEqual((r.status, r.body, r.header("x-a")), (204, b"", "1"))

    def test_a_pooled_connection_the_server_closed_is_replaced(self):
        before = self.stub.count("shapes")
        self.assertEqual(self.request("GET", "/shapes/hangup").status, 200)
        self.assertEqual(self.request("GET", "/shapes/object").status, 200)
        self.assertEqual(self.stub.count("shapes") - before, 2)

    def test_function_error_is_500(self):
        self.assert_message(self.request("GET", "/fails"), 500, "Internal Server Error")
        self.assert_message(self.request("GET", "/shapes/garbage"), 500, "Internal Server Error")

    def test_slow_function_is_504_and_the_gateway_lives_on(self):
        started = time.time()
        self.assert_message(self.request("GET", "/shapes/sleep"), 504, "Endpoint request timed out")
        self.assertLess(time.time() - started, INVOKE_TIMEOUT + 2)
        self.assertEqual(self.request("GET", "/shapes/object").status, 200)

    # ---- JWT authorizer

    def test_jwt_valid_token(self):
        token = self.token(extra={"n": 5, "flag": True, "groups": ["a", "b"], "scope": "read write"})
        e = self.echo("GET", "/items/42", [("Authorization", f"Bearer {token}")])
        auth = e["requestContext"]["authorizer"]
        claims = auth["jwt"]["claims"]
        self.assertEqual(claims["sub"], "alice")
        self.assertEqual(claims["iss"], dev_issuer.ISSUER)
        self.assertEqual(claims["aud"], AUDIENCE)
        self.assertRegex(claims["exp"], r"^\d+$")
        self.assertRegex(claims["iat"], r"^\d+$")
        self.assertEqual((claims["n"], claims["flag"], claims["groups"]), ("5", "true", "[a b]"))
        self.assertEqual(auth["jwt"]["scopes"], ["read", "write"])
        self.assertEqual(e["pathParameters"], {"id": "42"})
        self.assertEqual(e["headers"]["authorization"], f"Bearer {token}")

    def test_jwt_without_bearer_prefix_and_without_scopes(self):
        e = self.echo("GET", "/items/1", [("Authorization", self.token())])
        self.assertIsNone(e["requestContext"]["authorizer"]["jwt"]["scopes"])

    def test_jwt_from_the_cli(self):
        out = subprocess.run([sys.executable, os.path.join(SCRIPTS, "dev_issuer.py"), "token",
                              "--key", self.key, "--sub", "carol", "--aud", AUDIENCE],
                             check=True, capture_output=True, text=True).stdout.strip()
        e = self.echo("GET", "/items/1", [("Authorization", f"Bearer {out}")])
        self.assertEqual(e["requestContext"]["authorizer"]["jwt"]["claims"]["sub"], "carol")
        self.assertEqual(jwt.get_unverified_header(out)["kid"], "dev")

    def test_jwt_refusals(self):
        now = int(time.time())
        claims = {"sub": "alice", "iss": dev_issuer.ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
        public_pem = dev_issuer.public_key(self.key).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        cli_expired = subprocess.run(
            [sys.executable, os.path.join(SCRIPTS, "dev_issuer.py"), "token", "--key", self.key,
             "--sub", "alice", "--aud", AUDIENCE, "--exp-offset", "-5"],
            check=True, capture_output=True, text=True).stdout.strip()
        cases = {
            "expired": self.token(exp_offset=-1),
            "expired (cli)": cli_expired,
            "not yet valid": self.token(nbf_offset=120),
            "issued in the future": self.token(now=now + 300),
            "wrong audience (the default one)": self.token(aud=dev_issuer.AUDIENCE),
            "wrong issuer": self.token(iss="someone-else"),
            "another key": self.token(key=self.other_key),
            "alg none": unsigned_jwt({"alg": "none", "typ": "JWT", "kid": "dev"}, claims),
            "HS256": jwt.encode(claims, "a-shared-secret-of-32-bytes-len!", algorithm="HS256",
                                headers={"kid": "dev"}),
            "HS256 keyed with the public key": hmac_jwt(claims, public_pem),
            "no exp": signed_without_exp(self.key, claims),
            "garbage": "not-a-jwt",
            "wrong kid": jwt.encode(claims, dev_issuer.load_private_key(self.key), algorithm="RS256",
                                    headers={"kid": "other"}),
        }
        for what, token in cases.items():
            path = f"/items/{uuid.uuid4().hex}"
            r = self.request("GET", path, [("Authorization", f"Bearer {token}")])
            self.assert_message(r, 401, "Unauthorized")
            challenge = r.header("www-authenticate")
            self.assertRegex(
                challenge, r'^Bearer scope="" error="invalid_token" error_description="[^"]+"$', what)
            self.assertNotIn(token, challenge, what)
            self.assertEqual(self.stub.events_at("echo", path), [], f"{what}: the function was invoked")

    def test_jwt_no_credential(self):
        for headers in ([], [("Authorization", "")], [("Authorization", "Bearer ")], [("X-Owner", "")]):
            path = f"/items/{uuid.uuid4().hex}"
            r = self.request("GET", path, headers)
            self.assert_message(r, 401, "Unauthorized")
            self.assertIsNotNone(r.header("www-authenticate"))
            self.assertEqual(self.stub.events_at("echo", path), [])

    def test_jwt_route_scopes(self):
        r = self.request("GET", "/scoped", [("Authorization", self.token(extra={"scope": "read"}))])
        self.assertEqual(r.status, 200)
        r = self.request("GET", "/scoped", [("Authorization", self.token(extra={"scope": "write"}))])
        self.assert_message(r, 403, "Forbidden")
        self.assertIn('error="insufficient_scope"', r.header("www-authenticate"))

    def test_x_owner_shorthand(self):
        e = self.echo("GET", "/items/7", [("X-Owner", "bob"), ("Authorization", "Bearer tgl_not_a_jwt")])
        self.assertEqual(e["requestContext"]["authorizer"],
                         {"jwt": {"claims": {"sub": "bob"}, "scopes": None}})
        self.assertEqual(e["headers"]["authorization"], "Bearer tgl_not_a_jwt")
        self.assertEqual(e["headers"]["x-owner"], "bob")
        # On an open route it is just a header.
        e = self.echo("GET", "/open/exact", [("X-Owner", "bob")])
        self.assertNotIn("authorizer", e["requestContext"])
        self.assertEqual(e["headers"]["x-owner"], "bob")

    # ---- Lambda authorizer (imported from the other template)

    def test_lambda_authorizer_allows_with_context(self):
        path = f"/app/nocache/{uuid.uuid4().hex}"
        e = self.echo("GET", path + "?q=1", [("Authorization", "Bearer good"), ("Cookie", "k=v")])
        self.assertEqual(e["requestContext"]["authorizer"], {"lambda": GOOD_CONTEXT})
        self.assertEqual(e["routeKey"], "ANY /app/nocache/{proxy+}")
        self.assertEqual(e["requestContext"]["apiId"], "appapi")
        [a] = self.stub.events_at("authz", path)
        self.assertEqual(a["version"], "2.0")
        self.assertEqual(a["type"], "REQUEST")
        self.assertEqual(a["routeArn"],
                         f"arn:aws:execute-api:us-east-1:123456789012:appapi/$default/GET{path}")
        self.assertEqual(a["identitySource"], ["Bearer good"])
        self.assertEqual(a["routeKey"], "ANY /app/nocache/{proxy+}")
        self.assertEqual((a["rawPath"], a["rawQueryString"]), (path, "q=1"))
        self.assertEqual(a["queryStringParameters"], {"q": "1"})
        self.assertEqual(a["cookies"], ["k=v"])
        self.assertEqual(a["headers"]["authorization"], "Bearer good")
        self.assertEqual(a["pathParameters"], {"proxy": path.rsplit("/", 1)[1]})
        self.assertNotIn("authorizer", a["requestContext"])
        self.assertEqual(a["requestContext"]["requestId"], e["requestContext"]["requestId"])
        self.assertNotIn("stageVariables", a)

    def test_lambda_authorizer_missing_identity_is_401_uninvoked(self):
        before = self.stub.count("authz")
        for headers in ([], [("Authorization", "")], [("X-Owner", "alice")]):
            path = f"/app/nocache/{uuid.uuid4().hex}"
            self.assert_message(self.request("GET", path, headers), 401, "Unauthorized")
            self.assertEqual(self.stub.events_at("echo", path), [])
        self.assertEqual(self.stub.count("authz"), before)

    def test_lambda_authorizer_denies_with_403(self):
        path = f"/app/nocache/{uuid.uuid4().hex}"
        self.assert_message(self.request("POST", path, [("Authorization", "Bearer bad")]), 403, "Forbidden")
        self.assertEqual(len(self.stub.events_at("authz", path)), 1)
        self.assertEqual(self.stub.events_at("echo", path), [])

    def test_lambda_authorizer_malformed_or_slow_is_500(self):
        for identity in ("Bearer broken", "Bearer nested", "Bearer slow"):
            path = f"/app/nocache/{uuid.uuid4().hex}"
            r = self.request("GET", path, [("Authorization", identity)])
            self.assert_message(r, 500, "Internal Server Error")
            self.assertEqual(self.stub.events_at("echo", path), [], identity)

    def test_lambda_authorizer_ttl_0_invokes_every_time(self):
        path = f"/app/nocache/{uuid.uuid4().hex}"
        for _ in range(3):
            self.assertEqual(self.request("GET", path, [("Authorization", "Bearer good")]).status, 200)
        self.assertEqual(len(self.stub.events_at("authz", path)), 3)

    def test_lambda_authorizer_ttl_2_caches_allow_and_deny(self):
        good, bad = f"Bearer good-{uuid.uuid4().hex}", f"Bearer bad-{uuid.uuid4().hex}"

        def calls(identity):
            with self.stub.lock:
                return sum(1 for e in self.stub.events["authz"] if e["identitySource"] == [identity])

        for _ in range(2):
            e = self.echo("GET", "/app/cached", [("Authorization", good)])
            self.assertEqual(e["requestContext"]["authorizer"], {"lambda": GOOD_CONTEXT})
            r = self.request("GET", "/app/cached", [("Authorization", bad)])
            self.assert_message(r, 403, "Forbidden")
        self.assertEqual((calls(good), calls(bad)), (1, 1))
        time.sleep(2.2)
        self.assertEqual(self.request("GET", "/app/cached", [("Authorization", good)]).status, 200)
        self.assertEqual(calls(good), 2)

    def test_lambda_authorizer_iam_policy(self):
        e = self.echo("GET", "/app/policy/1", [("Authorization", "Bearer good")])
        self.assertEqual(e["requestContext"]["authorizer"], {"lambda": GOOD_CONTEXT})
        for identity in ("Bearer bad", "Bearer good-elsewhere"):
            r = self.request("GET", "/app/policy/2", [("Authorization", identity)])
            self.assert_message(r, 403, "Forbidden")

    # ---- never wedge

    def test_500_concurrent_requests_all_answered(self):
        n = 500
        statuses = [None] * n
        before = self.stub.count("slow")

        def one(i):
            try:
                statuses[i] = self.request("GET", "/slow?ms=50").status
            except Exception as e:  # noqa: BLE001 (reported below)
                statuses[i] = repr(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        started = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.time() - started
        self.assertEqual([s for s in statuses if s != 200], [], f"after {elapsed:.1f}s")
        self.assertEqual(self.stub.count("slow") - before, n)
        # The limit was reached (the invocations overlapped) and never passed.
        self.assertEqual(self.stub.peak["slow"], MAX_IN_FLIGHT)

    def test_queue_timeout_is_503(self):
        port, _ = self.start_gateway("tight", "--max-in-flight", "1", "--queue-timeout", "0.3")
        statuses = []
        threads = [threading.Thread(target=lambda: statuses.append(
            self.request("GET", "/slow?ms=1200", port=port).status)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(sorted(statuses), [200, 503, 503])
        self.assert_message(self.request("GET", "/nowhere", port=port), 404, "Not Found")

    # ---- logs

    def test_log_lines_hold_no_secrets(self):
        secret = f"secret{uuid.uuid4().hex}"
        self.request("GET", f"/open/exact?token={secret}", [("Authorization", f"Bearer {secret}")],
                     body=secret.encode())
        time.sleep(0.2)
        log = read(self.log)
        self.assertNotIn(secret, log)
        self.assertRegex(log, r"(?m)^GET /open/exact 200 \d+\.\dms$")

    def test_an_unparseable_request_line_is_not_echoed(self):
        secret = f"tgl_{uuid.uuid4().hex}"
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"GET /open/exact?token={secret} extra HTTP/1.1\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.decode().partition("\r\n\r\n")
        self.assertTrue(head.startswith("HTTP/1.1 400 "), head)
        self.assertEqual(json.loads(body), {"message": "Bad Request"})
        time.sleep(0.2)
        self.assertNotIn(secret, answer.decode() + read(self.log))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(header, claims):
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def hmac_jwt(claims, secret):
    head = f"{b64url(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'dev'}).encode())}." \
           f"{b64url(json.dumps(claims).encode())}"
    return f"{head}.{b64url(hmac.new(secret, head.encode(), hashlib.sha256).digest())}"


def signed_without_exp(key_path, claims):
    claims = {k: v for k, v in claims.items() if k != "exp"}
    return jwt.encode(claims, dev_issuer.load_private_key(key_path), algorithm="RS256",
                      headers={"kid": "dev"})


# --------------------------------------------------------------------------
# The route table of the real templates, and start-up checks.

class _AnyTagLoader(yaml.SafeLoader):
    """Reads a template with every short tag as None: an independent look
    at its events (their Method and Path are plain strings)."""


_AnyTagLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


class TemplateTest(unittest.TestCase):
    def test_the_example_api_states_its_binding_in_every_event(self):
        def events_of(parameters):
            table = local_gateway.load_routes([
                (os.path.join(ROOT, "template.yaml"), "tollgate"),
                (os.path.join(ROOT, "examples", "protected-api", "template.yaml"), "tollgate-demo")],
                parameters)
            route, params = table.find("GET", "/demo/x")
            req = local_gateway.Request("GET", "/demo/x", "", {}, [], {}, b"", "127.0.0.1", "r", 0.0)
            return local_gateway.base_event(req, route, params)
        event = events_of({"TollgateOwners": "bob,carol"})
        self.assertEqual(event["stageVariables"],
                         {"tollgateOwners": "bob,carol", "tollgateAudience": "demo"})
        self.assertEqual(events_of({})["stageVariables"]["tollgateOwners"], "alice")
        # An empty value: the API states no owners (what the unbound test uses).
        self.assertEqual(events_of({"TollgateOwners": ""})["stageVariables"],
                         {"tollgateAudience": "demo"})
        with self.assertRaises(local_gateway.TemplateError):
            events_of({"TollgateOwners": "a|b"})

    def test_real_templates(self):
        table = local_gateway.load_routes([
            (os.path.join(ROOT, "template.yaml"), "tollgate"),
            (os.path.join(ROOT, "examples", "protected-api", "template.yaml"), "tollgate-demo")])
        with open(os.path.join(ROOT, "template.yaml")) as f:
            doc = yaml.load(f, Loader=_AnyTagLoader)
        served = {r.route_key: r for r in table.routes}
        count = 0
        for logical, res in doc["Resources"].items():
            if res.get("Type") != "AWS::Serverless::Function":
                continue
            binary = res["Metadata"]["BuildProperties"]["Binary"]
            for name, event in (res["Properties"].get("Events") or {}).items():
                if event["Type"] != "HttpApi":
                    continue
                count += 1
                p = event["Properties"]
                key = f"{p['Method'].upper()} {p['Path']}"
                self.assertIn(key, served, f"{logical}.{name}")
                self.assertEqual(served[key].function, binary, key)
                # And a concrete request reaches it.
                concrete = re.sub(r"\{[^}]+\}", "abc", p["Path"])
                route, _ = table.find(p["Method"].upper(), concrete)
                self.assertEqual(route.route_key, key)
                open_route = (p.get("Auth") or {}).get("Authorizer") == "NONE"
                self.assertEqual(route.authorizer is None, open_route, key)
                if not open_route:
                    self.assertIsInstance(route.authorizer, local_gateway.JwtAuthorizer)
                    self.assertEqual(route.authorizer.issuer, dev_issuer.ISSUER)
                    self.assertEqual(route.authorizer.audiences, [dev_issuer.AUDIENCE])
        self.assertGreaterEqual(count, 10)
        demo, params = table.find("GET", "/demo/anything/at/all")
        self.assertEqual(demo.route_key, "ANY /demo/{proxy+}")
        self.assertEqual(params, {"proxy": "anything/at/all"})
        self.assertEqual(demo.function, "demo-echo")
        auth = demo.authorizer
        self.assertIsInstance(auth, local_gateway.LambdaAuthorizer)
        authorize = doc["Resources"]["AuthorizeFunction"]["Metadata"]["BuildProperties"]["Binary"]
        self.assertEqual(auth.function, authorize)
        self.assertEqual((auth.simple, auth.ttl, auth.sources), (True, 0, [("header", "authorization")]))

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="gateway-templates-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_duplicate_route_fails_at_start(self):
        a = self.write("a.yaml", TOLLGATE_TEMPLATE)
        b = self.write("b.yaml", TOLLGATE_TEMPLATE.replace("AuthorizerArn\"", "OtherArn\""))
        with self.assertRaisesRegex(local_gateway.TemplateError, r"GET /items/\{id\} is defined twice"):
            local_gateway.load_routes([(a, "one"), (b, "two")])
        proc = subprocess.run(
            [sys.executable, os.path.join(SCRIPTS, "local_gateway.py"), "--port", str(free_port()),
             "--invoke-port", "1", "--template", a, "--template", b,
             "--issuer-key", os.path.join(self.tmp, "k.pem")],
            capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("is defined twice", proc.stderr)

    def test_unresolvable_import_fails_at_start(self):
        app = self.write("app.yaml", APP_TEMPLATE)
        with self.assertRaisesRegex(local_gateway.TemplateError, r"'tollgate-AuthorizerArn'"):
            local_gateway.load_routes([(app, "tollgate-demo")])

    def test_unsupported_payload_version_fails_at_start(self):
        t = self.write("t.yaml", TOLLGATE_TEMPLATE)
        app = self.write("app.yaml", APP_TEMPLATE.replace('AuthorizerPayloadFormatVersion: "2.0"',
                                                          'AuthorizerPayloadFormatVersion: "1.0"', 1))
        with self.assertRaisesRegex(local_gateway.TemplateError, r"NoCache.*AuthorizerPayloadFormatVersion"):
            local_gateway.load_routes([(t, "tollgate"), (app, "tollgate-demo")])

    def test_a_route_added_to_a_template_is_served(self):
        extra = TOLLGATE_TEMPLATE.replace("""  SlowFunction:""", """        Added:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: POST, Path: "/added/{a}/and/{b}"}
  SlowFunction:""")
        table = local_gateway.load_routes([(self.write("t.yaml", extra), "tollgate")])
        route, params = table.find("POST", "/added/1/and/2")
        self.assertEqual((route.route_key, params), ("POST /added/{a}/and/{b}", {"a": "1", "b": "2"}))
        self.assertIsInstance(route.authorizer, local_gateway.JwtAuthorizer)

    def test_intrinsics(self):
        path = self.write("i.yaml", """
Parameters:
  Env: {Type: String, Default: dev}
  Names: {Type: CommaDelimitedList, Default: "a,b"}
Conditions:
  IsDev: !Equals [!Ref Env, dev]
  NotDev: !Not [!Condition IsDev]
Mappings:
  M: {dev: {x: from-map}}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Metadata: {BuildProperties: {Binary: !Join ["-", [bin, !Ref Env]]}}
    Properties: {}
  T:
    Type: AWS::DynamoDB::Table
""")
        registry = local_gateway.Registry()
        stack = local_gateway.Stack(path, "st", {"Env": "dev"}, registry)
        registry.stacks.append(stack)
        r = stack.resolve
        self.assertEqual(
            r({"Fn::Sub": "${AWS::StackName}:${AWS::Region}:${AWS::AccountId}:${Env}:${!Literal}"}),
            "st:us-east-1:123456789012:dev:${Literal}")
        self.assertEqual(r({"Fn::Sub": ["${X}-${T.Arn}", {"X": {"Ref": "Env"}}]}),
                         "dev-arn:aws:dynamodb:us-east-1:123456789012:T")
        self.assertEqual(r({"Fn::GetAtt": ["Fn", "Arn"]}),
                         "arn:aws:lambda:us-east-1:123456789012:function:bin-dev")
        self.assertEqual(r({"Fn::If": ["IsDev", "yes", "no"]}), "yes")
        self.assertEqual(r({"Fn::If": ["NotDev", "yes", {"Ref": "AWS::NoValue"}]}), local_gateway.NO_VALUE)
        self.assertEqual(r({"a": {"Fn::If": ["NotDev", 1, {"Ref": "AWS::NoValue"}]}, "b": 2}), {"b": 2})
        self.assertEqual(r({"Fn::Select": [1, {"Ref": "Names"}]}), "b")
        self.assertEqual(r({"Fn::Split": [",", "x,y"]}), ["x", "y"])
        self.assertEqual(r({"Fn::FindInMap": ["M", {"Ref": "Env"}, "x"]}), "from-map")
        self.assertEqual(r({"Fn::Base64": "hi"}), "aGk=")
        self.assertEqual(r({"Fn::And": [{"Condition": "IsDev"}, {"Fn::Or": [False, True]}]}), True)
        self.assertEqual(r({"Ref": "AWS::Partition"}), "aws")
        self.assertEqual(r({"Ref": "AWS::URLSuffix"}), "amazonaws.com")
        with self.assertRaises(local_gateway.TemplateError):
            r({"Ref": "Nope"})


class DevIssuerTest(unittest.TestCase):
    def test_init_creates_a_private_key_once(self):
        tmp = tempfile.mkdtemp(prefix="issuer-")
        self.addCleanup(shutil.rmtree, tmp, True)
        path = os.path.join(tmp, "sub", "k.pem")
        self.assertTrue(dev_issuer.init_key(path))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        before = read(path)
        self.assertFalse(dev_issuer.init_key(path))
        self.assertEqual(read(path), before)
        self.assertIn("PRIVATE KEY", before)

    def test_defaults_are_the_gateways(self):
        self.assertEqual(local_gateway.GATEWAY_PARAMETER_DEFAULTS,
                         {"JwtIssuer": dev_issuer.ISSUER, "JwtAudience": dev_issuer.AUDIENCE,
                          "TollgateOwners": "alice", "TollgateIssuer": "http://127.0.0.1:3000"})


class LoginFlowTest(unittest.TestCase):
    """The development issuer's sign-in for the console: code + PKCE."""

    def setUp(self):
        tmp = tempfile.mkdtemp(prefix="flow-")
        self.addCleanup(shutil.rmtree, tmp, True)
        self.key = os.path.join(tmp, "k.pem")
        dev_issuer.init_key(self.key)
        self.clock = [1_900_000_000.0]
        self.flow = dev_issuer.LoginFlow(self.key, now=lambda: self.clock[0])
        self.verifier = "v" * 50
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        self.request = {"response_type": "code", "client_id": dev_issuer.AUDIENCE,
                        "redirect_uri": "http://127.0.0.1:3000/console", "state": "s1",
                        "code_challenge": challenge, "code_challenge_method": "S256"}

    def authorize(self, method="POST", cookies=None, **changes):
        p = {**self.request, **changes}
        form = {**p, "username": "alice"} if method == "POST" else {}
        query = "" if method == "POST" else "&".join(f"{k}={v}" for k, v in p.items())
        return self.flow.handle(method, "/dev-issuer/authorize", query, form, cookies or {})

    def exchange(self, code, **changes):
        form = {"grant_type": "authorization_code", "code": code, "client_id": dev_issuer.AUDIENCE,
                "redirect_uri": self.request["redirect_uri"], "code_verifier": self.verifier, **changes}
        return self.flow.handle("POST", "/dev-issuer/token", "", form, {})

    def code_of(self, answer):
        status, headers, _ = answer
        self.assertEqual(status, 302)
        location = dict(headers)["location"]
        self.assertTrue(location.startswith("http://127.0.0.1:3000/console?"))
        params = dict(urllib_parse.parse_qsl(location.split("?", 1)[1]))
        self.assertEqual(params["state"], "s1")
        return params["code"]

    def test_a_code_is_exchanged_once_with_its_verifier_for_a_jwt(self):
        status, headers, body = self.authorize(method="GET")
        self.assertEqual(status, 200)
        self.assertIn(b'name="username"', body)
        self.assertIn("default-src 'none'", dict(headers)["content-security-policy"])
        code = self.code_of(self.authorize())
        self.assertEqual(self.exchange(code, code_verifier="w" * 50)[0], 400)
        code = self.code_of(self.authorize())
        status, _, body = self.exchange(code)
        self.assertEqual(status, 200)
        token = json.loads(body)["id_token"]
        claims = jwt.decode(token, dev_issuer.public_key(self.key), algorithms=["RS256"],
                            audience=dev_issuer.AUDIENCE, issuer=dev_issuer.ISSUER)
        self.assertEqual(claims["sub"], "alice")
        self.assertEqual(self.exchange(code)[0], 400, "a code works once")

    def test_a_session_signs_in_again_without_asking_until_it_ends(self):
        _, headers, _ = self.authorize()
        cookie = dict(headers)["set-cookie"]
        self.assertIn("HttpOnly", cookie)
        value = cookie.split(";")[0].split("=", 1)[1]
        cookies = {dev_issuer.SESSION_COOKIE: value}
        self.code_of(self.authorize(method="GET", cookies=cookies))
        self.clock[0] += dev_issuer.SESSION_SECONDS + 1
        self.assertEqual(self.authorize(method="GET", cookies=cookies)[0], 200)

    def test_requests_it_will_not_serve(self):
        for changes in ({"redirect_uri": "https://evil.example/console"},
                        {"redirect_uri": "http://evil.example\\@localhost/console"},
                        {"redirect_uri": "http://127.0.0.1:3000/console\r\nSet-Cookie: x=1"},
                        {"redirect_uri": "http://127.0.0.1:3000/elsewhere"},
                        {"redirect_uri": "http://user@127.0.0.1:3000/console"},
                        {"client_id": "someone-else"}, {"code_challenge_method": "plain"},
                        {"code_challenge": "short"}, {"response_type": "token"}):
            status, _, body = self.authorize(method="GET", **changes)
            self.assertEqual(status, 400, changes)
            self.assertNotIn(b"username", body)
        self.assertEqual(self.authorize()[0], 302)
        status, _, _ = self.flow.handle("POST", "/dev-issuer/authorize", "",
                                        {**self.request, "username": "<script>"}, {})
        self.assertEqual(status, 400)
        code = self.code_of(self.authorize())
        self.clock[0] += dev_issuer.CODE_SECONDS + 1
        self.assertEqual(self.exchange(code)[0], 400, "an expired code")
        code = self.code_of(self.authorize())
        self.assertEqual(self.exchange(code, redirect_uri="http://127.0.0.1:3000/other")[0], 400)


if __name__ == "__main__":
    unittest.main()
