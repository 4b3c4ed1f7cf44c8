"""`sam local` as a user runs it, against the running stack (make test,
make sam-local): every event in events/ through `sam local invoke`, as
shipped, and `sam local start-api` on the real routes.

The functions are the arm64 bootstraps `sam build` made for a deploy, in
SAM's containers (the Runtime Interface Emulator), run through qemu.
scripts/sam_local.sh prepares Docker and sets:
  TOLLGATE_SAM_TEMPLATE, TOLLGATE_SAM_ENV_VARS, TOLLGATE_SAM_IMAGE,
  TOLLGATE_SAM_LOGS (a folder for the functions' logs: make test scans
  them for secrets), and TOLLGATE_SCANNER_KEYS (the stand-in scanner's keys).
"""

import base64
import json
import os
import threading
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVENTS = os.path.join(ROOT, "events")
PLACEHOLDER_ID = "0000000000000000000000000a"
PLACEHOLDER_TOKEN = "tgl_replace_with_a_token_from_create"
PLACEHOLDER_IDENTITY = "id_00000000000000000000000000"
MALFORMED = {"active": False, "reason": "MALFORMED"}
NOT_FOUND = "/problems/not-found"

# Each event as shipped: its function and what it answers (events/README.md).
# An expectation is a status with the body's members that must match, or
# (for the authorizer and the stream) the members of the function's answer.
AS_SHIPPED = {
    "list": ("ListFunction", 200, {}),
    "audit": ("ListFunction", 400, {"type": "/problems/invalid-request"}),
    "create": ("CreateFunction", 201, {"description": "from an API Gateway event"}),
    "identity-create": ("CreateFunction", 201, {"externalId": "events-customer"}),
    "detail": ("DetailFunction", 404, {"type": NOT_FOUND}),
    "patch": ("PatchFunction", 404, {"type": NOT_FOUND}),
    "delete": ("DeleteFunction", 404, {"type": NOT_FOUND}),
    "identity-delete": ("DeleteFunction", 404, {"type": NOT_FOUND}),
    "validate": ("ValidateFunction", 200, MALFORMED),
    "validate-form": ("ValidateFunction", 200, MALFORMED),
    "validate-reserve": ("ValidateFunction", 200, MALFORMED),
    "mint-capability": ("ValidateFunction", 200, MALFORMED),
    "renew-lease": ("ValidateFunction", 404, {"type": NOT_FOUND}),
    "release-lease": ("ValidateFunction", 404, {"type": NOT_FOUND}),
    "release-settle": ("ValidateFunction", 404, {"type": NOT_FOUND}),
    "revoke": ("ValidateFunction", 200, {}),
    "leaks-github": ("ValidateFunction", 401, {"type": "/problems/bad-signature"}),
    "jwks": ("ValidateFunction", 200, {}),
    "authorize-http": ("AuthorizeFunction", None, {"isAuthorized": False, "context": {"reason": "MALFORMED"}}),
    "authorize-rest-token": ("AuthorizeFunction", None, {"context": {"reason": "API_NOT_BOUND"}}),
    "authorize-rest-request": ("AuthorizeFunction", None, {"context": {"reason": "MALFORMED"}}),
    "stream": ("EventsFunction", None, {"batchItemFailures": []}),
}


def sam_args():
    return ["--template", os.environ["TOLLGATE_SAM_TEMPLATE"],
            "--env-vars", os.environ["TOLLGATE_SAM_ENV_VARS"],
            "--skip-pull-image", "--invoke-image", os.environ["TOLLGATE_SAM_IMAGE"]]


LOG_LOCK = threading.Lock()


def sam_invoke(function, event_file):
    """`sam local invoke FUNCTION --event FILE`: the function's answer."""
    run = subprocess.run(["sam", "local", "invoke", function, "--event", event_file, *sam_args()],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    with LOG_LOCK, open(os.path.join(os.environ["TOLLGATE_SAM_LOGS"], "invoke.log"), "a") as log:
        log.write(run.stderr)
    # SAM prints the answer on stdout, the function's logs on stderr.
    answer = run.stdout.strip().splitlines()
    if run.returncode != 0 or not answer:
        raise AssertionError(f"sam local invoke {function} ({os.path.basename(event_file)}) answered nothing:\n"
                             f"{run.stderr[-3000:]}")
    return json.loads(answer[-1])


def with_placeholders(name, token_id, token, directory):
    with open(os.path.join(EVENTS, f"{name}.json")) as f:
        text = f.read().replace(PLACEHOLDER_ID, token_id).replace(PLACEHOLDER_TOKEN, token)
    path = os.path.join(directory, f"{name}-{token_id}.json")
    with open(path, "w") as f:
        f.write(text)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class SamLocal(unittest.TestCase):
    created = None

    def assert_members(self, got, want, what):
        for key, value in want.items():
            if isinstance(value, dict) and isinstance(got.get(key), dict):
                self.assert_members(got[key], value, f"{what}.{key}")
            else:
                self.assertEqual(got.get(key), value, f"{what}: {key} in {got}")

    def test_a_every_event_through_sam_local_invoke(self):
        shipped = sorted(f[:-5] for f in os.listdir(EVENTS) if f.endswith(".json"))
        self.assertEqual(shipped, sorted(AS_SHIPPED), "every event in events/ has its expectation")

        def one(name):
            function, _, _ = AS_SHIPPED[name]
            return name, sam_invoke(function, os.path.join(EVENTS, f"{name}.json"))

        # Two at a time: each is a container of its own.
        with ThreadPoolExecutor(2) as pool:
            answers = dict(pool.map(one, shipped))
        for name in shipped:
            _, status, want = AS_SHIPPED[name]
            answer = answers[name]
            if status is None:
                self.assert_members(answer, want, name)
                continue
            self.assertEqual(answer["statusCode"], status, f"{name}: {answer}")
            body = json.loads(answer["body"]) if answer.get("body") else {}
            self.assert_members(body, want, name)
            if name == "jwks":
                self.assertEqual(body["keys"][0]["crv"], "Ed25519")
            if name == "audit":  # the placeholder is not a token id: named
                self.assertEqual(body["errors"][0]["field"], "tokenId")
        # The identity goes again, through its own event (an externalId is
        # one identity's).
        identity = json.loads(answers["identity-create"]["body"])["id"]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "identity-delete.json")
            with open(os.path.join(EVENTS, "identity-delete.json")) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace(PLACEHOLDER_IDENTITY, identity))
            self.assertEqual(sam_invoke("DeleteFunction", path)["statusCode"], 204)
        created = json.loads(answers["create"]["body"])
        self.assertTrue(created["token"].startswith("tgl_"))
        type(self).created = created
        record_minted(created["token"])

    def test_b_start_api_on_the_real_routes(self):
        self.assertIsNotNone(self.created, "the create event made the token this uses")
        token_id, token = self.created["id"], self.created["token"]
        port = free_port()
        log = open(os.path.join(os.environ["TOLLGATE_SAM_LOGS"], "start-api.log"), "w")
        api = subprocess.Popen(
            ["sam", "local", "start-api", "--host", "127.0.0.1", "--port", str(port),
             "--warm-containers", "LAZY", *sam_args()],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertIsNone(api.poll(), "sam local start-api exited")
                    self.assertLess(time.monotonic(), deadline, "sam local start-api did not listen")
                    time.sleep(0.5)
            validate = json.dumps({"token": token, "resource": "/teams/1"}).encode()
            json_type = {"Content-Type": "application/json"}

            status, body = request("POST", f"{base}/validate", validate, json_type)
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["active"], True, body)
            status, body = request("GET", f"{base}/.well-known/jwks.json")
            self.assertEqual((status, json.loads(body)["keys"][0]["crv"]), (200, "Ed25519"))
            # SAM does not emulate JWT authorizers: a management route gets
            # no verified owner, and the function refuses it.
            status, body = request("GET", f"{base}/tokens", headers={"Authorization": "Bearer x"})
            self.assertEqual(status, 401, body)

            with tempfile.TemporaryDirectory() as d:
                answer = sam_invoke("DeleteFunction", with_placeholders("delete", token_id, token, d))
            self.assertEqual(answer["statusCode"], 204, answer)
            status, body = request("POST", f"{base}/validate", validate, json_type)
            self.assertEqual((status, json.loads(body)), (200, {"active": False, "reason": "NOT_FOUND"}))

            # A leak report signed as GitHub signs it: the function fetches
            # the scanner's keys (over the TLS relay) and revokes the token.
            leaked = json.loads(sam_invoke("CreateFunction", os.path.join(EVENTS, "create.json"))["body"])
            record_minted(leaked["token"])
            report = json.dumps([{"token": leaked["token"], "type": "tollgate_token",
                                  "url": "https://github.com/octo/app/blob/main/.env",
                                  "source": "content"}]).encode()
            key_id, signature = scanner_signature(report)
            status, body = request("POST", f"{base}/leaks/github", report, {
                "Content-Type": "application/json",
                "Github-Public-Key-Identifier": key_id,
                "Github-Public-Key-Signature": signature,
            })
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)[0]["label"], "true_positive", body)
            gone = json.dumps({"token": leaked["token"]}).encode()
            status, body = request("POST", f"{base}/validate", gone, json_type)
            self.assertEqual(json.loads(body)["reason"], "NOT_FOUND", body)
        finally:
            os.killpg(api.pid, 15)
            api.wait(timeout=60)
            log.close()


def scanner_signature(body):
    """The stand-in scanner's key id and its signature of `body` (ECDSA
    P-256, DER, base64), as GitHub sends them."""
    folder = os.environ["TOLLGATE_SCANNER_KEYS"]
    with open(os.path.join(folder, "scanner-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    with open(os.path.join(folder, "public", "public_keys.json")) as f:
        key_id = json.load(f)["public_keys"][0]["key_identifier"]
    return key_id, base64.b64encode(key.sign(body, ec.ECDSA(hashes.SHA256()))).decode()


def record_minted(token):
    """For the secret scan at the end of make test: this token's secret
    must appear nowhere in the table or the logs."""
    path = os.environ.get("TOLLGATE_MINTED_FILE")
    if path and re.match(r"^tgl_", token):
        with open(path, "a") as f:
            f.write(token + "\n")


if __name__ == "__main__":
    result = unittest.main(argv=[sys.argv[0], "-v"], exit=False).result
    sys.exit(0 if result.wasSuccessful() else 1)
