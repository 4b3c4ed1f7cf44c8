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
python3 "$ROOT/scripts/local_gateway.py" "$GATEWAY_PORT" "$API_PORT" &
echo $! >"$RUN/soak-gateway.pid"
STACK_PIDS="$STACK_PIDS $RUN/soak-gateway.pid"
wait_port 127.0.0.1 "$GATEWAY_PORT" 10 || die "local gateway did not start"
TOLLGATE_GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT" ./target/release/soak
