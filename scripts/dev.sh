#!/usr/bin/env bash
# make dev: the whole stack on loopback until Ctrl-C.
source "$(dirname "$0")/common.sh"
source "$ROOT/scripts/stack.sh"
DDB_PORT=${DDB_PORT:-8000}
API_PORT=${API_PORT:-9000}
ensure_tools
trap 'echo; echo "==> stopping"; stop_stack; exit 0' INT TERM
trap 'stop_stack' EXIT
start_stack "$DDB_PORT" "$API_PORT" dev
U="http://127.0.0.1:$API_PORT/lambda-url"
cat <<MSG

Tollgate is running (DynamoDB Local on 127.0.0.1:$DDB_PORT, the keyring in a local Secrets Manager
on 127.0.0.1:$((DDB_PORT + 50)), functions on 127.0.0.1:$API_PORT).
Locally the owner comes from the X-Owner header (TOLLGATE_DEV_AUTH=1). Try:

  # create (201, the token string is shown once)
  curl -s -X POST $U/create/tokens -H 'X-Owner: alice' -H 'Content-Type: application/json' \\
       -d '{"description":"ci bot","resource":"/teams","write":true,"maxUses":100,"maxConcurrent":12}'
  TOKEN=tgl_...   ID=...       # from the answer

  curl -s $U/list/tokens -H 'X-Owner: alice'                        # list
  curl -s $U/detail/tokens/\$ID -H 'X-Owner: alice'                  # detail
  curl -s $U/detail/tokens/\$ID?format=xml -H 'X-Owner: alice'       # detail as XML
  curl -s -X PATCH $U/patch/tokens/\$ID -H 'X-Owner: alice' \\
       -H 'Content-Type: application/merge-patch+json' -d '{"description":"renamed","tags":{"env":"prod"}}'
  curl -s -X POST $U/patch/tokens/\$ID/roll -H 'X-Owner: alice' \\
       -H 'Content-Type: application/json' -d '{"graceSeconds":600}'   # new secret, old one 10 more minutes
  curl -s -X POST $U/validate/validate -H 'Content-Type: application/json' \\
       -d "{\"token\":\"\$TOKEN\",\"resource\":\"/teams/17\",\"write\":true}"       # validate
  curl -s -X POST $U/validate/validate -H "Authorization: Bearer \$TOKEN" \\
       -d 'acquire=true'                                               # take a lease (form-encoded)
  curl -s -X PUT $U/validate/validate/leases/\$LEASE -H "Authorization: Bearer \$TOKEN"     # renew
  curl -s -X DELETE $U/validate/validate/leases/\$LEASE -H "Authorization: Bearer \$TOKEN"  # release
  curl -s -X DELETE $U/delete/tokens/\$ID -H 'X-Owner: alice' -w '%{http_code}\n'          # delete

Logs: .run/dev-functions.log   Ctrl-C stops everything.
MSG
wait
