"""A loopback stand-in for API Gateway, for tools that need one base URL
(schemathesis). Like an HTTP API with payload format 2.0 it turns each HTTP
request into a Lambda event (a non-UTF-8 body goes base64-encoded, path
parameters and the route key are filled in, `X-Owner` plays the JWT
authorizer's `sub` claim) and invokes the function through the Lambda Invoke
API that `cargo lambda watch` serves, then turns the result back into HTTP.

usage: local_gateway.py LISTEN_PORT WATCH_PORT
"""
import base64
import http.client
import json
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

WATCH_PORT = int(sys.argv[2])


def route(method, path):
    """(function, route template, path parameters) for a request."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["validate"]:
        if len(parts) == 3 and parts[1] == "leases":
            return "validate", f"{method} /validate/leases/{{leaseId}}", {"leaseId": unquote(parts[2])}
        return "validate", f"{method} {path}", None
    if parts == [".well-known", "jwks.json"]:
        return "validate", f"{method} {path}", None
    if parts == ["tokens"]:
        return ("create" if method == "POST" else "list"), f"{method} /tokens", None
    if parts[:1] == ["tokens"] and len(parts) == 2:
        fn = {"PATCH": "patch", "DELETE": "delete"}.get(method, "detail")
        return fn, f"{method} /tokens/{{id}}", {"id": unquote(parts[1])}
    if parts[:1] == ["tokens"] and len(parts) == 3 and parts[2] == "roll":
        return "patch", f"{method} /tokens/{{id}}/roll", {"id": unquote(parts[1])}
    return "detail", f"{method} {path}", None


class Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        fn, route_key, params = route(self.command, url.path)
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = f"{headers[k]},{v}" if k in headers else v
        ctx = {
            "accountId": "123456789012", "apiId": "local", "domainName": "127.0.0.1",
            "domainPrefix": "local", "requestId": str(uuid.uuid4()), "routeKey": route_key,
            "stage": "$default", "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
            "http": {"method": self.command, "path": url.path, "protocol": "HTTP/1.1",
                     "sourceIp": self.client_address[0], "userAgent": headers.get("user-agent", "")},
        }
        owner = headers.get("x-owner")
        if owner and not route_key.split(" ", 1)[1].startswith("/validate"):
            ctx["authorizer"] = {"jwt": {"claims": {"sub": owner}, "scopes": None}}
        event = {"version": "2.0", "routeKey": route_key, "rawPath": url.path,
                 "rawQueryString": url.query, "headers": headers, "requestContext": ctx}
        if url.query:
            event["queryStringParameters"] = dict(parse_qsl(url.query, keep_blank_values=True))
        if params:
            event["pathParameters"] = params
        if body:
            try:
                event["body"], event["isBase64Encoded"] = body.decode("utf-8"), False
            except UnicodeDecodeError:
                event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        conn = http.client.HTTPConnection("127.0.0.1", WATCH_PORT, timeout=60)
        try:
            conn.request("POST", f"/2015-03-31/functions/{fn}/invocations", body=json.dumps(event),
                         headers={"content-type": "application/json"})
            raw = conn.getresponse().read()
        finally:
            conn.close()
        try:
            result = json.loads(raw)
            status = int(result["statusCode"])
        except (ValueError, KeyError, TypeError):
            # What API Gateway does when the function fails.
            result, status = {"body": '{"message":"Internal Server Error"}',
                              "headers": {"content-type": "application/json"}}, 500
        out = result.get("body") or ""
        out = base64.b64decode(out) if result.get("isBase64Encoded") else out.encode()
        self.send_response(status)
        for k, v in (result.get("headers") or {}).items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        for k, vs in (result.get("multiValueHeaders") or {}).items():
            if k.lower() not in ("content-length", "connection", "transfer-encoding") and k not in (result.get("headers") or {}):
                for v in vs:
                    self.send_header(k, v)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    def __getattr__(self, name):
        # Every method, QUERY and friends included, goes to the function.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Gateway).serve_forever()
