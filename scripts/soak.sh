#!/usr/bin/env bash
# make soak: a bounded soak of the whole local stack on loopback, then a
# reconciliation of every write; prints the latency distribution.
source "$(dirname "$0")/common.sh"
source "$ROOT/scripts/stack.sh"
cd "$ROOT"
ensure_tools
trap stop_stack EXIT
cargo build --quiet --release -p tollgate-bench --bin soak
API_PORT=${SOAK_API_PORT:-19200}
GATEWAY_PORT=${SOAK_GATEWAY_PORT:-19250}
start_stack "${SOAK_DDB_PORT:-18200}" "$API_PORT" soak
start_gateway "$GATEWAY_PORT" "$API_PORT" soak "${SOAK_DEMO_OWNER:-soak}"
TOLLGATE_GATEWAY_URL="$TOLLGATE_URL" ./target/release/soak
