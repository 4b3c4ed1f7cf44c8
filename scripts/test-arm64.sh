#!/usr/bin/env bash
# make test-arm64 (and a step of make test): builds the validate function
# for arm64 (Graviton) as deployed, with zig as the cross linker, and runs
# that bootstrap under qemu-user against the Lambda Runtime API emulator of
# the benchmarks and DynamoDB Local: one validate of a fresh token must be
# admitted. With a stack already up (make test), it uses its DynamoDB Local;
# alone, it starts one.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
ensure_tools
ensure_arm64_tools
if [ -z "${AWS_ENDPOINT_URL_DYNAMODB:-}" ]; then
  port=${ARM64_DDB_PORT:-18300}
  trap 'stop_pidfile "$RUN/arm64-dynamodb.pid"' EXIT
  start_dynamodb "$port" "$RUN/arm64-dynamodb.pid"
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$port" TOLLGATE_TABLE=tollgate-arm64
  create_table "$AWS_ENDPOINT_URL_DYNAMODB" "$TOLLGATE_TABLE" >/dev/null
  export TOLLGATE_HASH_KEY
  TOLLGATE_HASH_KEY="$(new_hash_key)"
fi
if [ -n "${ARM64_BOOTSTRAP:-}" ]; then
  # make test: the bootstrap the deploy path built (what a deploy ships).
  bootstrap=$ARM64_BOOTSTRAP
  [ -x "$bootstrap" ] || die "$bootstrap does not exist"
else
  echo "==> validate for arm64 (cargo lambda build --release --arm64, zig as the linker)"
  CARGO_LAMBDA_COMPILER=cargo-zigbuild cargo lambda build --quiet --release --arm64 --bin validate \
    --lambda-dir target/lambda-arm64 >"$RUN/arm64-build.log" 2>&1 \
    || { tail -30 "$RUN/arm64-build.log"; die "the arm64 build failed"; }
  bootstrap=target/lambda-arm64/validate/bootstrap
fi
file_type=$(od -An -tx1 -j18 -N2 "$bootstrap" | tr -d ' ')
[ "$file_type" = b700 ] || die "$bootstrap is not an arm64 ELF (e_machine $file_type)"
cargo build --quiet -p tollgate-bench --bin lambda_init
echo "==> the arm64 bootstrap under qemu-aarch64, one validate through the Runtime API"
./target/debug/lambda_init "$bootstrap" --under-qemu --invocations 1
