"""The local development JWT issuer: an RSA key in .run/ that stands in for
the identity provider (Cognito and the like) behind the HTTP API's JWT
authorizer. `local_gateway.py` verifies with the public half of the same
key and the constants below, so the two always agree.

The local gateway also serves its sign-in for the web console under
/dev-issuer/ (`LoginFlow`): the authorization code flow with PKCE, as
Cognito's hosted UI answers it once deployed.

usage:
  dev_issuer.py init PATH
  dev_issuer.py token --key PATH --sub alice [--iss ISSUER] [--aud AUDIENCE]
                      [--ttl SECONDS] [--exp-offset SECONDS] [--nbf-offset SECONDS]

Development only: anyone with the key file mints any identity, and anyone
who reaches the sign-in page signs in as any name. Never deployed.
"""
import argparse
import base64
import hashlib
import html
import json
import os
import hmac
import re
import sys
import threading
import time
import urllib.parse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# The one definition of the local issuer; the gateway's parameter defaults
# (JwtIssuer, JwtAudience) come from here.
ISSUER = "tollgate-dev-issuer"
AUDIENCE = "tollgate-local"
KEY_ID = "dev"
ALGORITHM = "RS256"
DEFAULT_TTL = 3600


def init_key(path):
    """Creates an RSA 2048 private key PEM at `path` (mode 0600) unless one
    is there; returns True when it wrote one."""
    if os.path.exists(path):
        return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_EXCL: two concurrent inits never interleave; the file is never
    # readable by others, not even for an instant.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return True


def load_private_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_key(path):
    """The verification key of the issuer whose private key is at `path`."""
    return load_private_key(path).public_key()


def mint(key_path, sub, iss=ISSUER, aud=AUDIENCE, ttl=DEFAULT_TTL,
         exp_offset=None, nbf_offset=None, extra=None, now=None):
    """An RS256 JWT with sub, iss, aud, iat, exp (now + exp_offset when
    given, else now + ttl), nbf (now + nbf_offset) when given, and any
    `extra` claims."""
    now = int(time.time() if now is None else now)
    claims = {"sub": sub, "iss": iss, "aud": aud, "iat": now,
              "exp": now + (ttl if exp_offset is None else exp_offset)}
    if nbf_offset is not None:
        claims["nbf"] = now + nbf_offset
    claims.update(extra or {})
    return jwt.encode(claims, load_private_key(key_path), algorithm=ALGORITHM,
                      headers={"kid": KEY_ID})


# Where the gateway serves the sign-in, and how long its pieces live.
FLOW_PATH = "/dev-issuer"
CODE_SECONDS = 60
SESSION_SECONDS = 600
SESSION_COOKIE = "tollgate_dev_session"
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43,128}$")
# A page that runs nothing and loads nothing.
PAGE_HEADERS = [
    ("content-type", "text/html; charset=utf-8"),
    ("content-security-policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
]


def _random():
    # Not the `secrets` module: scripts/secrets.py shadows it here.
    return base64.urlsafe_b64encode(os.urandom(24)).rstrip(b"=").decode()


def _loopback(uri):
    """Whether `uri` is the console on this machine (`http://127.0.0.1:PORT/console`
    or localhost): the only place the development issuer sends a browser
    back to. Nothing else passes: no user info (`http://evil\\@localhost/`
    goes to evil in a browser), no other path, query or fragment, and no
    control character or space (a header's line break)."""
    if not uri or any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in uri):
        return False
    u = urllib.parse.urlsplit(uri)
    try:
        u.port  # a malformed port raises
    except ValueError:
        return False
    return (u.scheme in ("http", "https") and u.hostname in ("127.0.0.1", "localhost")
            and u.username is None and u.password is None and "@" not in u.netloc
            and u.path == "/console" and not u.query and not u.fragment)


class LoginFlow:
    """The authorization code flow with PKCE (RFC 6749, RFC 7636) for the
    web console: a sign-in page asking for a name, one-time codes bound to
    the client, the redirect URI and the challenge, and a short session
    (an HttpOnly cookie) so that a reload signs in without asking again.
    `handle` answers (status, headers, body) for a request under FLOW_PATH."""

    def __init__(self, key_path, now=time.time):
        self.key_path = key_path
        self.now = now
        self.codes = {}      # code -> (sub, client_id, redirect_uri, challenge, expiry)
        self.sessions = {}   # cookie value -> (sub, expiry)
        self.lock = threading.Lock()

    def handle(self, method, path, query, form, cookies):
        params = dict(urllib.parse.parse_qsl(query))
        if path == f"{FLOW_PATH}/authorize" and method in ("GET", "POST"):
            return self.authorize(method, {**params, **form}, cookies)
        if path == f"{FLOW_PATH}/token" and method == "POST":
            return self.token(form)
        if path == f"{FLOW_PATH}/logout" and method == "GET":
            return self.logout(params, cookies)
        return 404, [("content-type", "text/plain")], b"not found"

    def authorize(self, method, p, cookies):
        problem = self._request_problem(p)
        if problem:
            return self._page(f"This sign-in request cannot be served: {problem}.", status=400)
        sub = self._session(cookies.get(SESSION_COOKIE))
        headers = []
        if method == "POST":
            name = p.get("username", "").strip()
            if not NAME.match(name):
                return self._page("A name is 1 to 64 letters, digits and ._@-", p, status=400)
            sub = name
            cookie = _random()
            with self.lock:
                self.sessions[cookie] = (sub, self.now() + SESSION_SECONDS)
            headers.append(("set-cookie", f"{SESSION_COOKIE}={cookie}; Path={FLOW_PATH}; "
                                          f"HttpOnly; SameSite=Lax; Max-Age={SESSION_SECONDS}"))
        if sub is None:
            return self._page(None, p)
        code = _random()
        with self.lock:
            self.codes[code] = (sub, p["client_id"], p["redirect_uri"], p["code_challenge"],
                                self.now() + CODE_SECONDS)
        query = urllib.parse.urlencode({"code": code, "state": p.get("state", "")})
        return 302, [("location", f"{p['redirect_uri']}?{query}"), ("cache-control", "no-store"),
                     *headers], b""

    def _request_problem(self, p):
        if p.get("response_type") != "code":
            return "response_type must be code"
        if p.get("client_id") != AUDIENCE:
            return "unknown client_id"
        if not _loopback(p.get("redirect_uri", "")):
            return "redirect_uri must be on this machine"
        if p.get("code_challenge_method") != "S256" or not CHALLENGE.match(p.get("code_challenge", "")):
            return "PKCE with S256 is required"
        return None

    def _session(self, cookie):
        with self.lock:
            held = self.sessions.get(cookie or "")
            if held and held[1] > self.now():
                return held[0]
            self.sessions.pop(cookie or "", None)
        return None

    def token(self, form):
        def refuse(error):
            return 400, [("content-type", "application/json"), ("cache-control", "no-store")], \
                f'{{"error": "{error}"}}'.encode()
        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type")
        with self.lock:
            held = self.codes.pop(form.get("code", ""), None)  # one use, whatever follows
        if held is None:
            return refuse("invalid_grant")
        sub, client_id, redirect_uri, challenge, expiry = held
        verifier = form.get("code_verifier", "")
        derived = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (expiry <= self.now() or form.get("client_id") != client_id
                or form.get("redirect_uri") != redirect_uri
                or not hmac.compare_digest(derived, challenge)):
            return refuse("invalid_grant")
        token = mint(self.key_path, sub, aud=client_id, ttl=DEFAULT_TTL)
        body = {"id_token": token, "access_token": token, "token_type": "Bearer",
                "expires_in": DEFAULT_TTL}
        return 200, [("content-type", "application/json"), ("cache-control", "no-store")], \
            json.dumps(body).encode()

    def logout(self, params, cookies):
        with self.lock:
            self.sessions.pop(cookies.get(SESSION_COOKIE, ""), None)
        target = params.get("logout_uri", "")
        headers = [("set-cookie", f"{SESSION_COOKIE}=; Path={FLOW_PATH}; HttpOnly; SameSite=Lax; Max-Age=0"),
                   ("cache-control", "no-store")]
        if _loopback(target):
            return 302, [("location", target), *headers], b""
        return 200, [*PAGE_HEADERS, *headers[:1]], b"<!doctype html><title>Signed out</title><p>Signed out."

    def _page(self, problem, p=None, status=200):
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in (p or {}).items()
            if k in ("response_type", "client_id", "redirect_uri", "state", "scope",
                     "code_challenge", "code_challenge_method"))
        form = "" if p is None else (
            f'<form method="post" action="{FLOW_PATH}/authorize">{hidden}'
            '<p><label for="username">Sign in as</label> '
            '<input id="username" name="username" autocomplete="username" required autofocus></p>'
            '<p><button type="submit">Sign in</button></p></form>')
        note = f'<p role="alert">{html.escape(problem)}</p>' if problem else ""
        body = ("<!doctype html><html lang=\"en\"><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<title>Development sign-in</title><h1>Development sign-in</h1>"
                "<p>The local stack's issuer: any name signs in, with no password. "
                "A deployment signs in with its own issuer.</p>"
                f"{note}{form}</html>")
        return status, PAGE_HEADERS, body.encode()


def main(argv=None):
    p = argparse.ArgumentParser(description="The local development JWT issuer.")
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("init", help="create the issuer's private key if missing")
    i.add_argument("path")
    t = sub.add_parser("token", help="print a signed JWT")
    t.add_argument("--key", required=True)
    t.add_argument("--sub", required=True)
    t.add_argument("--iss", default=ISSUER)
    t.add_argument("--aud", default=AUDIENCE)
    t.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    t.add_argument("--exp-offset", type=int, help="exp = now + this (negative: already expired)")
    t.add_argument("--nbf-offset", type=int, help="nbf = now + this")
    args = p.parse_args(argv)
    if args.command == "init":
        init_key(args.path)
        print(args.path)
    else:
        print(mint(args.key, args.sub, iss=args.iss, aud=args.aud, ttl=args.ttl,
                   exp_offset=args.exp_offset, nbf_offset=args.nbf_offset))
    return 0


if __name__ == "__main__":
    sys.exit(main())
