#!/usr/bin/env bash
# make test: installs what is missing, lints, starts the stack on loopback,
# runs every test, and stops what it started.
source "$(dirname "$0")/common.sh"
source "$ROOT/scripts/stack.sh"
source "$ROOT/scripts/sam_local.sh"
cd "$ROOT"
DDB_PORT=${TEST_DDB_PORT:-18000}
API_PORT=${TEST_API_PORT:-19000}
GATEWAY_PORT=${TEST_GATEWAY_PORT:-19050}
# Each step's wall-clock seconds, printed as it ends, and the total.
STARTED=$SECONDS
step_at=$SECONDS
step() {
  [ -n "${STEP_NAME:-}" ] && printf '    (%s: %ds)\n' "$STEP_NAME" $((SECONDS - step_at))
  step_at=$SECONDS STEP_NAME=$1
  echo "==> $1"
}
# The deploy path, as a machine with only Rust and Python runs it (no Java,
# Node or Docker on its PATH): the nine functions for arm64 (release, fat
# LTO), `sam build`, the built template linted and packaged (moto's S3 API
# in the stack below stands in for the bucket; the check waits for it). The
# arm64 build is the longest step: it starts first, in the background at the
# lowest CPU priority, and runs beside everything below. Its bootstraps are
# the ones the arm64 test runs and the ones a deploy would ship.
only_rust_and_python=$(mktemp -d)
for dir in /usr/local/bin /usr/bin /bin; do
  for exe in "$dir"/*; do
    name=${exe##*/}
    case "$name" in java | javac | jshell | node | nodejs | npm | npx | docker | dockerd) continue ;; esac
    if [ -f "$exe" ] && [ -x "$exe" ] && [ ! -e "$only_rust_and_python/$name" ]; then
      ln -s "$exe" "$only_rust_and_python/$name"
    fi
  done
done
DEPLOY_PATH="$(dirname "$(command -v cargo)"):$only_rust_and_python"
DEPLOY_BUILD_PID=
if [ "${SKIP_SAM_BUILD:-}" != 1 ]; then
  env PATH="$DEPLOY_PATH" PACKAGE_S3_ENDPOINT="http://127.0.0.1:$((DDB_PORT + 50))" \
    setsid nice -n 19 bash "$ROOT/scripts/deploy.sh" check >"$RUN/deploy-check.log" 2>&1 &
  DEPLOY_BUILD_PID=$!
fi
stop_deploy_build() {
  [ -n "$DEPLOY_BUILD_PID" ] && kill -- "-$DEPLOY_BUILD_PID" 2>/dev/null || true
}
trap 'kill $(jobs -p) 2>/dev/null; sam_local_down; stop_stack; stop_deploy_build; rm -rf "$only_rust_and_python"' EXIT
# One build lints and compiles: clippy's driver stands in for rustc on the
# workspace's own crates (what `cargo clippy -- -D warnings` runs, with
# codegen kept), so the dependencies are compiled once instead of checked
# for clippy and then built for the tests. Every cargo command below runs
# with it, so they all find these artifacts fresh. The tools install
# (network and disk, little CPU) beside it.
step "format, then one build of every binary and test with clippy's lints as errors; the tools install beside it into .tools"
{ ensure_tools && ensure_browser && { [ "${SKIP_SAM_BUILD:-}" = 1 ] || ensure_sam_local_tools; }; } >"$RUN/tools.log" 2>&1 &
tools_pid=$!
cargo fmt --all -- --check
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)" || die "clippy-driver not found: rustup component add clippy"
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
# A clean build gains nothing from incremental state; CI builds clean.
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL=0
# The binaries, the test binaries, and the benchmark (linted; run by make bench).
cargo build --quiet --workspace --bins
cargo test --quiet --workspace --no-run
cargo test --quiet --workspace --no-run --benches
wait "$tools_pid" || { cat "$RUN/tools.log"; die "installing the tools failed"; }
cat "$RUN/tools.log"

step "starting DynamoDB Local, the functions and the local API gateway"
# GitHub's secret-scanning keys, played by a key pair on loopback.
SCANNER_PORT=$((GATEWAY_PORT + 10))
export TOLLGATE_GITHUB_KEYS_URL="http://127.0.0.1:$SCANNER_PORT/public_keys.json"
# Capabilities are issued by the gateway's URL, so the example app's JWT
# authorizer finds their keys as API Gateway would (its discovery document).
export TOLLGATE_ISSUER="http://127.0.0.1:$GATEWAY_PORT"
start_stack "$DDB_PORT" "$API_PORT" test \
  "TOLLGATE_GITHUB_KEYS_URL=$TOLLGATE_GITHUB_KEYS_URL
TOLLGATE_ISSUER=$TOLLGATE_ISSUER
$(console_env "$GATEWAY_PORT")"
start_scanner_keys "$SCANNER_PORT"
[ "$AWS_ENDPOINT_URL_SECRETS_MANAGER" = "http://127.0.0.1:$((DDB_PORT + 50))" ] \
  || die "the deploy check expects moto's S3 API on DDB_PORT + 50"
# The example app bound to the tests' demo owner, and the same app bound
# to no one (what an API that states nothing gets).
export TOLLGATE_DEMO_OWNER=demo-owner
start_gateway "$GATEWAY_PORT" "$API_PORT" test "$TOLLGATE_DEMO_OWNER"
export TOLLGATE_GATEWAY_LOG="$RUN/test-gateway.log"
start_gateway "$((GATEWAY_PORT + 1))" "$API_PORT" test-unbound "" TOLLGATE_UNBOUND_URL
# Each function's first invocation starts its process under `cargo lambda
# watch` (cargo's freshness check, then the binary's init): seconds, and
# beside the deploy build tens of them. Paid here, one function at a time,
# before the suites start timing their requests (answers are 4xx, but for
# one token and one identity of the owner warm-up: the first transactions
# through the functions and the events path).
"$VENV/bin/python" - "$TOLLGATE_URL" <<'PY'
import sys, urllib.error, urllib.request
base, none = sys.argv[1], "/tokens/0000000000000000000000000a"
for method, path, body, auth in [
    ("GET", "/tokens", None, None), ("POST", "/tokens", b"[]", None),
    ("POST", "/tokens", b'{"description": "warm-up"}', None),
    ("POST", "/identities", b'{"externalId": "warm-up"}', None),
    ("GET", none, None, None), ("PATCH", none, b"{}", None), ("DELETE", none, None, None),
    ("POST", "/validate", b"{}", None), ("GET", "/demo/warm-up", None, "Bearer warm-up"),
    ("GET", "/console", None, None),
]:
    headers = {"X-Owner": "warm-up", "Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    try:
        urllib.request.urlopen(urllib.request.Request(
            base + path, data=body, method=method, headers=headers), timeout=180).read()
    except urllib.error.HTTPError:
        pass
PY
export TOLLGATE_MINTED_FILE="$RUN/minted-tokens.txt"
export TOLLGATE_FUNCTION_LOG="$RUN/test-functions.log"
: >"$TOLLGATE_MINTED_FILE"

# The checks of the templates, the specification, the docs and the local
# gateway are Python that mostly waits: they run beside the Rust tests.
static_checks() {
  set -e
  for t in template.yaml examples/protected-api/template.yaml; do
    echo "cfn-lint and sam validate --lint: $t"
    cfn-lint "$t"
    sam validate --lint --template "$t" >/dev/null
  done
  echo "cfn-lint: the templates docs/ shows"
  "$VENV/bin/python" scripts/doc_snippets.py "$RUN/doc-snippets" | xargs cfn-lint
  echo "checkov (a skipped check carries its reason in the template)"
  CKV_SKIP_PACKAGE_UPDATE_CHECK=true "$CHECKOV_VENV/bin/checkov" --framework cloudformation --quiet --compact \
    --skip-download -f template.yaml -f examples/protected-api/template.yaml
  echo "the local API gateway's and the stream poller's own tests (stub functions)"
  "$VENV/bin/python" -m unittest -q tests/gateway_test.py tests/stream_poller_test.py 2>&1
  echo "openapi.yaml (OpenAPI 3.1) and every relative link of the docs"
  openapi-spec-validator --schema 3.1 openapi.yaml
  "$VENV/bin/python" scripts/check_links.py
}
static_checks >"$RUN/static-checks.log" 2>&1 &
static_pid=$!
# Schemathesis (every operation of openapi.yaml, bounded examples, through
# the local gateway, as its own owner) and a client generated by
# openapi-python-client: they run after the Rust tests, beside the deploy
# build, so DynamoDB Local serves them unloaded (under the Rust tests' load
# its transactions can time out, a 503 schemathesis rightly counts).
run_schemathesis() {
  schemathesis run openapi.yaml --url "$TOLLGATE_URL" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-15}" --phases examples,coverage,fuzzing --request-timeout 30 --workers 2 \
    --header "X-Owner: schemathesis" --no-color >"$RUN/schemathesis.log" 2>&1
}
# Whether a failed run failed only inside the tool: CPython 3.11's `ast`
# can raise "AST constructor recursion depth mismatch" when two of
# schemathesis's worker threads describe a lambda at once. No check failed.
tool_error_only() {
  grep -q "AST constructor recursion depth mismatch" "$RUN/schemathesis.log" \
    && ! grep -q "^Failures:" "$RUN/schemathesis.log"
}
api_checks() {
  set -e
  if ! run_schemathesis; then
    if tool_error_only; then
      echo "schemathesis stopped on an error of its own, no check failed: run once more"
      cp "$RUN/schemathesis.log" "$RUN/schemathesis-first.log"
      run_schemathesis \
        || { tail -60 "$RUN/schemathesis.log"; echo "schemathesis found failures (full log: .run/schemathesis.log)"; return 1; }
    else
      tail -60 "$RUN/schemathesis.log"; echo "schemathesis found failures (full log: .run/schemathesis.log)"; return 1
    fi
  fi
  tail -5 "$RUN/schemathesis.log"
  "$VENV/bin/python" tests/generated_client_smoke.py >"$RUN/generated-client.log" 2>&1 \
    || { cat "$RUN/generated-client.log"; echo "the generated client's smoke test failed"; return 1; }
  head -1 "$RUN/generated-client.log"
  tail -1 "$RUN/generated-client.log"
}

step "tests: unit, in-process (store contract over memory and DynamoDB Local, faults, leases) and over HTTP; beside them cfn-lint, sam validate, checkov, the gateway's tests, openapi.yaml, the docs' links; then schemathesis, a generated client and the console in Chromium"
# cargo-nextest runs the test binaries side by side (the over-HTTP tests
# mostly wait on the stack); plain cargo test where it is not installed.
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast -E 'not binary(secret_scan)' \
    --test-threads "${TEST_THREADS:-4}" --hide-progress-bar --status-level fail --final-status-level slow 2>&1 | tee "$RUN/test-output.log"
else
  cargo test --workspace --no-fail-fast -- --skip no_secret_or_hash_key --skip metrics_lines_in_the_logs 2>&1 | tee "$RUN/test-output.log"
fi
status=${PIPESTATUS[0]}
[ "$status" = 0 ] || { echo "tests failed"; exit "$status"; }
# Docker for the sam local step (dockerd, qemu, the stand-in image, the
# relays), ready before the deploy build ends.
if [ "${SKIP_SAM_BUILD:-}" != 1 ]; then
  sam_local_docker
fi
# Then the API checks, and the web console in headless Chromium (Selenium,
# the system's chromedriver), while the deploy build finishes. Screenshots
# in .run/.
api_checks >"$RUN/api-checks.log" 2>&1 &
api_pid=$!
RUN_DIR="$RUN" "$VENV/bin/python" tests/console_test.py >"$RUN/console.log" 2>&1 &
console_pid=$!
# nextest runs no documentation examples: the client crate's, compiled
# (edition 2024: one merged binary) and run here.
cargo test --quiet --doc -p tollgate-client
wait "$static_pid" || { cat "$RUN/static-checks.log"; die "a check of the templates, openapi.yaml, the docs or the gateway failed"; }
cat "$RUN/static-checks.log"
wait "$api_pid" || { cat "$RUN/api-checks.log"; die "schemathesis or the generated client failed"; }
cat "$RUN/api-checks.log"
wait "$console_pid" || { cat "$RUN/console.log"; die "the console's browser tests failed (screenshots: .run/console-*.png)"; }
grep -E "^(console_|Ran |OK)" "$RUN/console.log"

step "the deploy path without an account: make deploy-check (Rust and Python only on PATH), started first"
if [ "${SKIP_SAM_BUILD:-}" = 1 ]; then
  echo "skipped (SKIP_SAM_BUILD=1)"
else
  wait "$DEPLOY_BUILD_PID" || { tail -40 "$RUN/deploy-check.log"; die "the deploy path failed (log: .run/deploy-check.log)"; }
  DEPLOY_BUILD_PID=
  grep -E "Finished|^nine|^packaged" "$RUN/deploy-check.log"
  ensure_arm64_tools

  step "arm64: the validate bootstrap that deploy ships, run under qemu-user (make test-arm64)"
  ARM64_BOOTSTRAP="$ROOT/.aws-sam/build/ValidateFunction/bootstrap" bash "$ROOT/scripts/test-arm64.sh"

  step "sam local: every event through sam local invoke, start-api on the real routes, the events flow through start-lambda (make sam-local)"
  sam_local_template
  sam_local_checks
  sam_local_down
  sam_local_left_nothing
fi

step "secret scan of the table and the logs, and the metrics lines parsed as EMF, after the whole run"
cargo test --quiet --workspace --test secret_scan
step "done"
stop_stack
echo "make test: every step passed in $((SECONDS - STARTED))s"
