#!/usr/bin/env bash
# make dev: the whole stack on loopback until Ctrl-C.
source "$(dirname "$0")/common.sh"
source "$ROOT/scripts/stack.sh"
DDB_PORT=${DDB_PORT:-8000}
API_PORT=${API_PORT:-9000}
GATEWAY_PORT=${GATEWAY_PORT:-3000}
ensure_tools
trap 'echo; echo "==> stopping"; stop_stack; exit 0' INT TERM
trap 'stop_stack' EXIT
port_free "$GATEWAY_PORT" || die "port $GATEWAY_PORT is taken: stop what uses it, or set GATEWAY_PORT"
start_stack "$DDB_PORT" "$API_PORT" dev
# The API at its real routes, as API Gateway serves it (payload 2.0 events
# through the Lambda Invoke API of `cargo lambda watch`).
python3 "$ROOT/scripts/local_gateway.py" "$GATEWAY_PORT" "$API_PORT" >"$RUN/dev-gateway.log" 2>&1 &
echo $! >"$RUN/dev-gateway.pid"
STACK_PIDS="$STACK_PIDS $RUN/dev-gateway.pid"
wait_port 127.0.0.1 "$GATEWAY_PORT" 10 || die "the local gateway did not start; see .run/dev-gateway.log"
U="http://127.0.0.1:$GATEWAY_PORT"
cat <<MSG

Tollgate is running: the API at its real routes on $U (a stand-in for API
Gateway), the functions under cargo lambda watch on 127.0.0.1:$API_PORT
(function URLs under /lambda-url/<name>/), DynamoDB Local on 127.0.0.1:$DDB_PORT and
the keyring in a local Secrets Manager on 127.0.0.1:$((DDB_PORT + 50)).
Locally the owner comes from the X-Owner header (TOLLGATE_DEV_AUTH=1). Try:

  # create (201, the token string is shown once)
  curl -s -X POST $U/tokens -H 'X-Owner: alice' -H 'Content-Type: application/json' \\
       -d '{"description":"ci bot","resource":"/teams","write":true,"maxUses":100,"maxConcurrent":12}'
  TOKEN=tgl_...   ID=...       # from the answer

  curl -s $U/tokens -H 'X-Owner: alice'                        # list
  curl -s $U/tokens/\$ID -H 'X-Owner: alice'                  # detail
  curl -s $U/tokens/\$ID?format=xml -H 'X-Owner: alice'       # detail as XML
  curl -s -X PATCH $U/tokens/\$ID -H 'X-Owner: alice' \\
       -H 'Content-Type: application/merge-patch+json' -d '{"description":"renamed","tags":{"env":"prod"}}'
  curl -s -X POST $U/tokens/\$ID/roll -H 'X-Owner: alice' \\
       -H 'Content-Type: application/json' -d '{"graceSeconds":600}'   # new secret, old one 10 more minutes
  curl -s -X POST $U/validate -H 'Content-Type: application/json' \\
       -d "{\"token\":\"\$TOKEN\",\"resource\":\"/teams/17\",\"write\":true}"       # validate
  curl -s -X POST $U/validate -H "Authorization: Bearer \$TOKEN" \\
       -d 'acquire=true'                                               # take a lease (form-encoded)
  curl -s -X PATCH $U/tokens/\$ID -H 'X-Owner: alice' -H 'Content-Type: application/json' \\
       -d '{"rateLimits":[{"name":"minute","limit":10,"periodSeconds":60}]}'   # 10 a minute
  curl -s -X PUT $U/validate/leases/\$LEASE -H "Authorization: Bearer \$TOKEN"     # renew
  curl -s -X DELETE $U/validate/leases/\$LEASE -H "Authorization: Bearer \$TOKEN"  # release
  curl -s -X POST $U/validate/capabilities -H "Authorization: Bearer \$TOKEN" \\
       -H 'Content-Type: application/json' -d '{"ttlSeconds":600,"resource":"/teams/1"}'  # a 10-minute capability
  CAP=eyJ...                   # from the answer; validates as the token narrowed:
  curl -s -X POST $U/validate -H "Authorization: Bearer \$CAP" -d 'resource=/teams/1'
  curl -s $U/.well-known/jwks.json                            # the keys that verify it offline
  curl -s -X DELETE $U/tokens/\$ID -H 'X-Owner: alice' -w '%{http_code}\n'          # delete

Logs: .run/dev-functions.log   Ctrl-C stops everything.
MSG
wait
