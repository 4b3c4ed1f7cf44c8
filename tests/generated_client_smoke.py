#!/usr/bin/env python3
"""A client generated from openapi.yaml by openapi-python-client (pinned in
scripts/requirements.txt), used as any client author would use it, against
the local gateway.

  1. generates the client from openapi.yaml into a temporary directory and
     fails on any error or warning of the generator (a response it drops,
     a schema it cannot read);
  2. imports it and, only through its functions, creates a token, validates
     it, rolls it (the old secret still validates in its grace, the new one
     validates), deletes it (204), sees both secrets validate as NOT_FOUND,
     sees a second delete answer 404 parsed into NotFoundProblem, and sees a
     create with a bad field answer 400 parsed into InvalidRequestProblem
     naming the field.

The management routes authenticate as the document says (bearerAuth): the
generated AuthenticatedClient carries a JWT of the local development issuer
(scripts/dev_issuer.py, key from TOLLGATE_DEV_ISSUER_KEY or
.run/dev-issuer.pem). Without that key it falls back to the local gateway's
development shorthand `X-Owner`. `/validate` needs no credential but the
token in the body, so it goes through a plain Client.

One line per step; exit status 0 only when every step passed. Token strings
are secrets: they are never printed (ids only), and each one minted is
appended to TOLLGATE_MINTED_FILE when set, for the secret scan of make test.

usage:
  TOLLGATE_URL=http://127.0.0.1:19050 tests/generated_client_smoke.py
  tests/generated_client_smoke.py --generate-only    # no gateway needed
  tests/generated_client_smoke.py --out DIR          # keep the client in DIR
"""
import argparse
import datetime
import importlib
import importlib.util
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi.yaml"
PACKAGE = "tollgate_client"
TAG = "generated-client:"
TOKEN_RE = re.compile(r"tgl_[0-9a-z_]{8,}")


class StepFailed(Exception):
    pass


def scrub(text):
    """Never let a token string reach the output, whatever failed."""
    return TOKEN_RE.sub("tgl_<redacted>", str(text))


def say(line):
    print(f"{TAG} {scrub(line)}", flush=True)


def check(cond, what):
    if not cond:
        raise StepFailed(what)


def record_minted(token):
    path = os.environ.get("TOLLGATE_MINTED_FILE")
    if path and token:
        with open(path, "a", encoding="utf-8") as f:
            f.write(token + "\n")


def generator_command():
    exe = Path(sys.executable).parent / "openapi-python-client"
    if exe.exists():
        return str(exe)
    found = shutil.which("openapi-python-client")
    if not found:
        raise StepFailed("openapi-python-client is not installed "
                         "(make test installs it from scripts/requirements.txt into .tools/venv)")
    return found


def generate(out_dir):
    """Generates the client package into out_dir/tollgate_client; fails on
    any output of the generator beyond its 'Generating ...' line."""
    exe = generator_command()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    version = version.replace(" version:", "")  # "openapi-python-client 0.29.1"
    target = Path(out_dir) / PACKAGE
    env = dict(os.environ)
    # The generator's post hooks run ruff, installed beside it.
    env["PATH"] = f"{Path(exe).parent}{os.pathsep}{env.get('PATH', '')}"
    r = subprocess.run(
        [exe, "generate", "--path", str(SPEC), "--output-path", str(target),
         "--meta", "none", "--overwrite", "--fail-on-warning"],
        capture_output=True, text=True, env=env, timeout=180,
    )
    noise = [line for line in (r.stdout + r.stderr).splitlines()
             if line.strip() and not line.startswith("Generating ")]
    if r.returncode != 0 or noise:
        sys.stderr.write((r.stdout + r.stderr)[-6000:])
        raise StepFailed(f"{version or 'openapi-python-client'} reported errors or warnings "
                         f"(exit {r.returncode}) for {SPEC.name}")
    return version, target


def load(out_dir):
    sys.path.insert(0, str(out_dir))
    m = {"pkg": importlib.import_module(PACKAGE)}
    for name in ("api.tokens.create_token", "api.tokens.roll_token", "api.tokens.delete_token",
                 "api.validation.validate_token", "models", "types"):
        m[name.rsplit(".", 1)[-1]] = importlib.import_module(f"{PACKAGE}.{name}")
    return m


def owner_clients(pkg, url, timeout):
    """(management client, how it authenticates, validate client)."""
    import httpx

    owner = f"smoke-{secrets.token_hex(6)}"
    key = os.environ.get("TOLLGATE_DEV_ISSUER_KEY") or str(ROOT / ".run" / "dev-issuer.pem")
    plain = pkg.Client(base_url=url, timeout=httpx.Timeout(timeout))
    if os.path.exists(key):
        # scripts/ also holds a secrets.py: load the one module by its path.
        spec = importlib.util.spec_from_file_location("dev_issuer", ROOT / "scripts" / "dev_issuer.py")
        dev_issuer = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(dev_issuer)
        jwt = dev_issuer.mint(key, owner, ttl=600)
        client = pkg.AuthenticatedClient(base_url=url, token=jwt, timeout=httpx.Timeout(timeout))
        return client, f"bearerAuth: a development-issuer JWT for {owner}", plain
    client = pkg.Client(base_url=url, headers={"X-Owner": owner}, timeout=httpx.Timeout(timeout))
    return client, f"X-Owner: {owner} (no development issuer key at {key})", plain


def run(m, url, timeout):
    create_token, roll_token = m["create_token"], m["roll_token"]
    delete_token, validate_token, models = m["delete_token"], m["validate_token"], m["models"]
    Unset = m["types"].Unset  # an optional member that was absent
    client, how, plain = owner_clients(m["pkg"], url, timeout)
    say(f"management calls authenticate with {how}")

    def validate(token):
        r = validate_token.sync_detailed(client=plain, body=models.ValidateRequest(token=token))
        check(r.status_code == 200, f"validate answered {r.status_code}, not 200")
        return r.parsed

    def step(name, fn):
        try:
            detail = fn()
        except StepFailed as e:
            raise StepFailed(f"{name}: {e}") from None
        except Exception as e:  # a transport error, or an answer the client cannot parse
            raise StepFailed(f"{name}: {type(e).__name__}: {e} (a transport error, or an answer "
                             "the generated client could not parse as openapi.yaml describes it)") from None
        say(f"{name}: ok{' (' + detail + ')' if detail else ''}")

    state = {}

    def create():
        r = create_token.sync_detailed(client=client, body=models.TokenCreate(
            description="openapi-python-client smoke", ttl_seconds=600))
        t = r.parsed
        if isinstance(t, models.CreatedToken):
            record_minted(t.token)
        check(r.status_code == 201, f"answered {r.status_code}, not 201 ({type(t).__name__})")
        check(isinstance(t, models.CreatedToken), f"parsed as {type(t).__name__}, not CreatedToken")
        check(t.token.startswith("tgl_"), "the secret is not of the token format")
        check(r.headers.get("etag") == '"1"', f"ETag {r.headers.get('etag')!r}, not '\"1\"'")
        check(r.headers.get("location") == f"/tokens/{t.id}", "Location does not name the token")
        state["id"], state["first"] = t.id, t.token
        return f"201 CreatedToken id={t.id}"

    def validate_created():
        v = validate(state["first"])
        check(isinstance(v, models.ValidationValid), f"parsed as {type(v).__name__}, not ValidationValid")
        check(v.active is True and v.id == state["id"], "not active, or another id")
        return f"active: true, id={v.id}"

    def roll():
        r = roll_token.sync_detailed(state["id"], client=client,
                                     body=models.RollTokenBody(grace_seconds=60))
        t = r.parsed
        if isinstance(t, models.CreatedToken):
            record_minted(t.token)
        check(r.status_code == 200, f"answered {r.status_code}, not 200 ({type(t).__name__})")
        check(isinstance(t, models.CreatedToken), f"parsed as {type(t).__name__}, not CreatedToken")
        check(t.id == state["id"], "the rolled token has another id")
        check(t.token != state["first"], "the roll answered the same secret")
        check(isinstance(t.previous_secret_expires_at, datetime.datetime),
              "no previousSecretExpiresAt after a roll with grace")
        state["second"] = t.token
        return f"200 CreatedToken id={t.id}, a new secret, the old one valid 60 s"

    def validate_rolled():
        old, new = validate(state["first"]), validate(state["second"])
        for name, v in (("old secret", old), ("new secret", new)):
            check(isinstance(v, models.ValidationValid),
                  f"{name} parsed as {type(v).__name__}, not ValidationValid")
            check(v.active is True and v.id == state["id"], f"{name}: not active, or another id")
        check(isinstance(old.secret_expires_at, datetime.datetime),
              "the old secret's answer has no secretExpiresAt")
        check(isinstance(new.secret_expires_at, Unset),
              "the new secret's answer has secretExpiresAt")
        return "old secret active in its grace (secretExpiresAt), new secret active"

    def delete():
        r = delete_token.sync_detailed(state["id"], client=client)
        check(r.status_code == 204, f"answered {r.status_code}, not 204")
        check(r.content == b"", "a 204 with a body")
        return f"204 id={state['id']}"

    def validate_deleted():
        for name in ("first", "second"):
            v = validate(state[name])
            check(isinstance(v, models.ValidationRefused),
                  f"{name} secret parsed as {type(v).__name__}, not ValidationRefused")
            check(v.active is False and v.reason == models.RefusalReason.NOT_FOUND,
                  f"{name} secret: {v.reason}, not NOT_FOUND")
        return "active: false, reason: NOT_FOUND for both secrets"

    def delete_again():
        r = delete_token.sync_detailed(state["id"], client=client)
        p = r.parsed
        check(r.status_code == 404, f"answered {r.status_code}, not 404")
        check(isinstance(p, models.NotFoundProblem), f"parsed as {type(p).__name__}, not NotFoundProblem")
        check(p.type_ == "/problems/not-found" and p.status == 404, f"type {p.type_!r}, status {p.status}")
        return f"404 NotFoundProblem, type {p.type_}"

    def bad_create():
        r = create_token.sync_detailed(client=client, body=models.TokenCreate(max_uses=0))
        p = r.parsed
        if isinstance(p, models.CreatedToken):
            record_minted(p.token)
        check(r.status_code == 400, f"answered {r.status_code}, not 400")
        check(isinstance(p, models.InvalidRequestProblem),
              f"parsed as {type(p).__name__}, not InvalidRequestProblem")
        fields = [e.field for e in p.errors]
        check(fields == ["maxUses"], f"errors name {fields}, not ['maxUses']")
        check(p.type_ == "/problems/invalid-request", f"type {p.type_!r}")
        return f"400 InvalidRequestProblem, errors[].field {fields}"

    step("create (POST /tokens)", create)
    step("validate (POST /validate)", validate_created)
    step("roll (POST /tokens/{id}/roll, graceSeconds 60)", roll)
    step("validate both secrets", validate_rolled)
    step("delete (DELETE /tokens/{id})", delete)
    step("validate after delete", validate_deleted)
    step("delete again", delete_again)
    step("create with maxUses: 0", bad_create)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generate-only", action="store_true",
                   help="generate and import the client, call nothing")
    p.add_argument("--out", help="generate into this directory (kept) instead of a temporary one")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    args = p.parse_args(argv)

    url = os.environ.get("TOLLGATE_URL", "").rstrip("/")
    if not args.generate_only and not url:
        say("FAILED: TOLLGATE_URL is not set (the local gateway's base URL, "
            "e.g. http://127.0.0.1:19050; make test sets it)")
        return 2

    tmp = None
    out = args.out
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="tollgate-generated-client-")
        out = tmp.name
    try:
        try:
            version, target = generate(out)
            m = load(out)
        except StepFailed as e:
            say(f"FAILED: generate: {e}")
            return 1
        except Exception as e:
            say(f"FAILED: import the generated client: {type(e).__name__}: {e}")
            return 1
        say(f"generated {PACKAGE} from {SPEC.name} with {version}: no errors, no warnings")
        if args.generate_only:
            return 0
        try:
            u = urlsplit(url)
            if u.scheme not in ("http", "https") or not u.hostname:
                raise ValueError("not an http(s) URL")
            port = u.port or (443 if u.scheme == "https" else 80)
            socket.create_connection((u.hostname, port), timeout=5).close()
        except (OSError, ValueError) as e:
            say(f"FAILED: the gateway at TOLLGATE_URL={url} is unreachable "
                f"({type(e).__name__}: {e}); start the stack (make dev) or fix TOLLGATE_URL")
            return 1
        try:
            run(m, url, args.timeout)
        except StepFailed as e:
            say(f"FAILED: {e}")
            return 1
        say("passed: create, validate, roll, validate both, delete, NOT_FOUND, 404 and 400 problems")
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
