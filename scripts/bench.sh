#!/usr/bin/env bash
# make bench: builds what it needs, starts and stops DynamoDB Local itself,
# runs every benchmark, prints a Markdown table and one `name value` line
# per target at the very end.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
DDB_PORT=${BENCH_DDB_PORT:-18100}
ensure_tools
trap 'stop_pidfile "$RUN/bench-dynamodb.pid" "$RUN/bench-secrets.pid"' EXIT
OUT="$RUN/bench"
mkdir -p "$OUT"

echo "==> building (release)" >&2
cargo build --quiet --release -p tollgate-bench -p validate

echo "==> starting DynamoDB Local" >&2
start_dynamodb "$DDB_PORT" "$RUN/bench-dynamodb.pid"
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT" TOLLGATE_TABLE=tollgate-bench
create_table "$AWS_ENDPOINT_URL_DYNAMODB" "$TOLLGATE_TABLE" >/dev/null
export TOLLGATE_HASH_KEY
TOLLGATE_HASH_KEY="$(new_hash_key)"
# The keyring in a local Secrets Manager too, for the init figure with the
# secret read at init (the deployed way).
start_local_aws $((DDB_PORT + 50)) "$RUN/bench-secrets.pid"
export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$((DDB_PORT + 50))" TOLLGATE_BENCH_SECRET=tollgate/bench-key
printf '{"current": "v1", "keys": {"v1": "%s"}}' "$TOLLGATE_HASH_KEY" | put_secret "$AWS_ENDPOINT_URL_SECRETS_MANAGER" "$TOLLGATE_BENCH_SECRET"

echo "==> validate and acquire against raw DynamoDB requests (interleaved)" >&2
./target/release/ratios >"$OUT/ratios.txt"

echo "==> the Rust client's own cost per validate, beside the HTTP round trip (loopback, interleaved)" >&2
./target/release/client_overhead >"$OUT/client.txt"

echo "==> hot path (criterion)" >&2
cargo bench --quiet -p tollgate-bench --bench hot_path -- --noplot '^(hot_path|capability_verify|capability_verify_es256|emf_line)$' >"$OUT/criterion.txt" 2>&1

echo "==> cold start against a Lambda Runtime API emulator (5 runs each)" >&2
: >"$OUT/init.txt"; : >"$OUT/init-cold.txt"; : >"$OUT/init-secret.txt"
for _ in 1 2 3 4 5; do
  ./target/release/lambda_init target/release/validate >>"$OUT/init.txt"
  ./target/release/lambda_init target/release/validate --no-warm-up >>"$OUT/init-cold.txt"
  ./target/release/lambda_init target/release/validate --secret >>"$OUT/init-secret.txt"
done

echo "==> deployment zips (cargo lambda build --release --output-format zip)" >&2
cargo lambda build --quiet --release --output-format zip >"$OUT/zip.log" 2>&1
zip_bytes=$(find target/lambda -name bootstrap.zip -printf '%s %h\n' | sort -n | tail -1)
echo "==> deployment zips for arm64 (cargo lambda build --release --arm64, zig as the linker)" >&2
ensure_arm64_tools
CARGO_LAMBDA_COMPILER=cargo-zigbuild cargo lambda build --quiet --release --arm64 --output-format zip \
  --lambda-dir target/lambda-arm64 >"$OUT/zip-arm64.log" 2>&1
zip_arm64_bytes=$(find target/lambda-arm64 -name bootstrap.zip -printf '%s %h\n' | sort -n | tail -1)

echo "==> events_lag_ms: a change's commit to its event, through the local stack (DynamoDB Local's stream, the poller, the events function, moto)" >&2
(
  source "$ROOT/scripts/stack.sh"
  trap stop_stack EXIT
  start_stack $((DDB_PORT + 200)) $((DDB_PORT + 1100)) bench-events >/dev/null
  "$VENV/bin/python" bench/events_lag.py 40
) >"$OUT/events-lag.txt"

med() { # median of the values of `key` in a file of `key value` lines
  awk -v k="$1" '$1 == k { print $2 }' "$2" | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
val() { awk -v k="$1" '$1 == k { print $2 }' "$2" | tail -1; }

micros() { # criterion's median estimate of bench `$1`, in µs
  awk -v b="$1" '$1 == b && /time:/ { v = $5; u = $6 } END { if (u == "ns") printf "%.3f", v / 1000; else if (u == "µs" || u == "us") printf "%.3f", v; else printf "%.3f", v * 1000 }' "$OUT/criterion.txt"
}
hot_us=$(micros hot_path)
capability_us=$(micros capability_verify)
capability_es256_us=$(micros capability_verify_es256)
emf_us=$(micros emf_line)
validate_ratio=$(val validate_vs_getitem "$OUT/ratios.txt")
acquire_ratio=$(val acquire_vs_raw "$OUT/ratios.txt")
spend_ratio=$(val spend_vs_update "$OUT/ratios.txt")
init_ms=$(med init_ms "$OUT/init.txt")
init_secret_ms=$(med init_ms "$OUT/init-secret.txt")
rss_mb=$(med rss_mb "$OUT/init.txt")
first_warm=$(med first_invocation_us "$OUT/init.txt")
first_cold=$(med first_invocation_us "$OUT/init-cold.txt")
zip_mb=$(awk -v b="${zip_bytes%% *}" 'BEGIN { printf "%.2f", b / 1048576 }')
zip_fn=$(basename "${zip_bytes#* }")
zip_arm64_mb=$(awk -v b="${zip_arm64_bytes%% *}" 'BEGIN { printf "%.2f", b / 1048576 }')
zip_arm64_fn=$(basename "${zip_arm64_bytes#* }")

cat <<TABLE

## Tollgate benchmarks ($(nproc) cores, $(date -u +%Y-%m-%d))

| figure | value | target |
|---|---|---|
| validate handler, median µs (API Gateway event in-process) | $(val validate_median_us "$OUT/ratios.txt") | |
| raw consistent GetItem, median µs | $(val getitem_median_us "$OUT/ratios.txt") | |
| **validate_vs_getitem** | **$validate_ratio** | ≤ 1.15 |
| validate spending a use and a rate-limit count, median µs | $(val spend_median_us "$OUT/ratios.txt") | |
| raw conditional UpdateItem, median µs | $(val update_median_us "$OUT/ratios.txt") | |
| **spend_vs_update** | **$spend_ratio** | ≤ 1.15 |
| validate + acquire, median µs | $(val acquire_median_us "$OUT/ratios.txt") | |
| raw UpdateItem of the acquire's shape (a count and a bucket up, under a limit), median µs | $(val raw_acquire_median_us "$OUT/ratios.txt") | |
| **acquire_vs_raw** | **$acquire_ratio** | ≤ 1.15 |
| raw conditional UpdateItem in the acquire loop, median µs | $(val acquire_update_median_us "$OUT/ratios.txt") | |
| **acquire_vs_update** (acquire against one raw conditional UpdateItem) | **$(val acquire_vs_update "$OUT/ratios.txt")** | ≤ 1.15 |
| 200 concurrent acquires at maxConcurrent 12, p50 / p99 µs (5 rounds; calls not answered 200) | $(val contended_p50_us "$OUT/ratios.txt") / $(val contended_p99_us "$OUT/ratios.txt") ($(val contended_not_answered "$OUT/ratios.txt")) | |
| **contended_p99_over_p50** | **$(val contended_p99_over_p50 "$OUT/ratios.txt")** | ≤ 10 |
| validate of a token of an identity (both limited), median µs (one TransactWriteItems of two conditional updates) | $(val identity_admit_median_us "$OUT/ratios.txt") | |
| raw TransactWriteItems of two conditional updates, median µs | $(val transact_median_us "$OUT/ratios.txt") | |
| **identity_admit_vs_transact** | **$(val identity_admit_vs_transact "$OUT/ratios.txt")** | ≤ 1.15 |
| 200 concurrent validates over 3 tokens of one identity, p50 / p99 µs (5 rounds; not admitted) | $(val contended_identity_p50_us "$OUT/ratios.txt") / $(val contended_identity_p99_us "$OUT/ratios.txt") ($(val contended_identity_not_admitted "$OUT/ratios.txt")) | |
| **contended_identity_p99_over_p50** | **$(val contended_identity_p99_over_p50 "$OUT/ratios.txt")** | ≤ 10 |
| a patch's write with its audit record, median µs (one TransactWriteItems: the token's update and the record's put) / the whole PATCH route (its read first) | $(val mgmt_write_median_us "$OUT/ratios.txt") / $(val patch_route_median_us "$OUT/ratios.txt") | |
| raw TransactWriteItems of a conditional update and a put, median µs | $(val mgmt_transact_median_us "$OUT/ratios.txt") | |
| **mgmt_write_vs_transact** | **$(val mgmt_write_vs_transact "$OUT/ratios.txt")** | ≤ 1.15 |
| **hot_path_us** (decode, HMAC check, secret hash, window, scope, address) | **$hot_us** | ≤ 2 |
| **capability_verify_us** (offline: format, Ed25519 signature, claims, window) | **$capability_us** | ≤ 60 |
| **capability_verify_es256_us** (the same for an ES256 capability: ECDSA P-256, low-S) | **$capability_es256_us** | ≤ 250 |
| a validate through \`tollgate_client\` / the same POST through raw reqwest, median µs (a loopback server's fixed answer) | $(val client_validate_us "$OUT/client.txt") / $(val raw_post_us "$OUT/client.txt") | |
| **client_validate_overhead_us** (the client's own cost per call: the request built, the answer decoded into its types) | **$(val client_validate_overhead_us "$OUT/client.txt")** | reported |
| emf_us (one request's metrics line, CloudWatch EMF, built and serialised) | $emf_us | |
| validate of a capability, median µs (its parent read: one GetItem) | $(val capability_median_us "$OUT/ratios.txt") | |
| **capability_vs_getitem** | **$(val capability_vs_getitem "$OUT/ratios.txt")** | ≤ 1.15 |
| authorize answering an HTTP API authorizer event, median µs (one GetItem) | $(val authorize_median_us "$OUT/ratios.txt") | |
| **authorize_vs_getitem** | **$(val authorize_vs_getitem "$OUT/ratios.txt")** | ≤ 1.15 |
| a holder's revocation of a token, median µs (one conditional DeleteItem, then its audit record's PutItem) | $(val revoke_median_us "$OUT/ratios.txt") | |
| **revoke_vs_deleteitem** (against the raw DeleteItem conditioned on the secret hash) | **$(val revoke_vs_deleteitem "$OUT/ratios.txt")** | ≤ 1.15 |
| raw DeleteItem then PutItem of a record, median µs | $(val delete_and_put_median_us "$OUT/ratios.txt") | |
| **revoke_vs_delete_and_put** (against the same two raw requests) | **$(val revoke_vs_delete_and_put "$OUT/ratios.txt")** | ≤ 1.15 |
| **events_lag_ms** (a change's commit to its event in a queue, median of 40; p90 $(val events_lag_p90_ms "$OUT/events-lag.txt"); the mapping's 1 s batching window dominates) | **$(val events_lag_ms "$OUT/events-lag.txt")** | reported |
| **init_ms** (x86_64, measured natively: process start → first request for work, median of 5; keyring from TOLLGATE_HASH_KEY; arm64 is measured for size only) | **$init_ms** | ≤ 20 |
| **init_secret_ms** (the same, keyring read from the local Secrets Manager at init, beside the DynamoDB warm-up) | **$init_secret_ms** | ≤ 20 |
| first invocation µs, connection opened in init / not (medians of 5) | $first_warm / $first_cold | |
| **rss_mb** (peak RSS after 1,000 validations) | **$rss_mb** | ≤ 24 |
| **zip_mb** (largest deployment zip, x86_64: $zip_fn) | **$zip_mb** | ≤ 5 |
| **zip_mb_arm64** (largest deployment zip, arm64, as deployed: $zip_arm64_fn) | **$zip_arm64_mb** | ≤ 5 |

DynamoDB Local 3.3 on loopback; samples: $(val samples "$OUT/ratios.txt") validate/GetItem pairs, $(awk '$1 == "samples" { print $3 }' "$OUT/ratios.txt") spend/UpdateItem pairs and as many acquire triples.
TABLE
echo
echo "validate_vs_getitem $validate_ratio"
echo "spend_vs_update $spend_ratio"
echo "acquire_vs_raw $acquire_ratio"
echo "acquire_vs_update $(val acquire_vs_update "$OUT/ratios.txt")"
echo "contended_p99_over_p50 $(val contended_p99_over_p50 "$OUT/ratios.txt")"
echo "identity_admit_vs_transact $(val identity_admit_vs_transact "$OUT/ratios.txt")"
echo "contended_identity_p99_over_p50 $(val contended_identity_p99_over_p50 "$OUT/ratios.txt")"
echo "mgmt_write_vs_transact $(val mgmt_write_vs_transact "$OUT/ratios.txt")"
echo "hot_path_us $hot_us"
echo "capability_verify_us $capability_us"
echo "capability_verify_es256_us $capability_es256_us"
echo "emf_us $emf_us"
echo "client_validate_overhead_us $(val client_validate_overhead_us "$OUT/client.txt")"
echo "capability_vs_getitem $(val capability_vs_getitem "$OUT/ratios.txt")"
echo "authorize_vs_getitem $(val authorize_vs_getitem "$OUT/ratios.txt")"
echo "revoke_vs_deleteitem $(val revoke_vs_deleteitem "$OUT/ratios.txt")"
echo "revoke_vs_delete_and_put $(val revoke_vs_delete_and_put "$OUT/ratios.txt")"
echo "events_lag_ms $(val events_lag_ms "$OUT/events-lag.txt")"
echo "init_ms $init_ms"
echo "init_secret_ms $init_secret_ms"
echo "rss_mb $rss_mb"
echo "zip_mb $zip_mb"
echo "zip_mb_arm64 $zip_arm64_mb"
