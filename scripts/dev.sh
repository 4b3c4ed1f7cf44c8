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
# Capabilities are issued by the API's URL, as deployed with CapabilityIssuer
# set to the ApiUrl output: the example app's /verified/* checks them itself.
export TOLLGATE_ISSUER="http://127.0.0.1:$GATEWAY_PORT"
start_stack "$DDB_PORT" "$API_PORT" dev "TOLLGATE_ISSUER=$TOLLGATE_ISSUER
$(console_env "$GATEWAY_PORT")"
# The API and the example app at their real routes, as API Gateway serves
# them (routes and authorizers read from the two templates).
# The example app accepts alice's tokens (its TollgateOwners).
start_gateway "$GATEWAY_PORT" "$API_PORT" dev alice
U="$TOLLGATE_URL"
ALICE_JWT=$("$VENV/bin/python" "$ROOT/scripts/dev_issuer.py" token --key "$TOLLGATE_DEV_ISSUER_KEY" --sub alice --ttl 86400)
cat <<MSG

Tollgate is running: the API and the example app at their real routes on $U
(a local API Gateway: routes and authorizers from template.yaml and
examples/protected-api/template.yaml), the functions under cargo lambda watch
on 127.0.0.1:$API_PORT (function URLs under /lambda-url/<name>/), DynamoDB Local on
127.0.0.1:$DDB_PORT, and moto on 127.0.0.1:$((DDB_PORT + 50)) (the keyring in Secrets Manager;
EventBridge and SQS for lifecycle events, which a poller of the table's stream
delivers through the events function as Lambda would).

The web console: $U/console
(sign in as alice: the local issuer takes any name, with no password).

The management routes sit behind the JWT authorizer, played against a local
development issuer (key: .run/dev-issuer.pem). A JWT for alice, valid 24 hours:

  JWT=$ALICE_JWT
  curl -s $U/tokens -H "Authorization: Bearer \$JWT"          # list alice's tokens

For development only, the gateway also takes 'X-Owner: NAME' as a verified
sub claim (the functions never read it). Try:

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
  curl -s -X POST $U/validate/revoke -d "token=\$CAP"         # its holder revokes it: {}
  curl -s -X DELETE $U/tokens/\$ID -H 'X-Owner: alice' -w '%{http_code}\\n'          # delete

The example app (examples/protected-api): /demo/* behind Tollgate's authorize,
bound to alice (stage variable tollgateOwners; another owner's token is
refused OWNER_NOT_ALLOWED). A token scoped to /demo, used, revoked, refused
on the very next call:

  T=\$(curl -s -X POST $U/tokens -H 'X-Owner: alice' -H 'Content-Type: application/json' -d '{"resource":"/demo"}')
  DEMO=\$(echo "\$T" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  DEMO_ID=\$(echo "\$T" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -s $U/demo/hello -H "Authorization: Bearer \$DEMO"                    # 200: who Tollgate says is calling
  curl -s -X DELETE $U/tokens/\$DEMO_ID -H 'X-Owner: alice' -w '%{http_code}\\n'   # revoke: 204
  curl -s $U/demo/hello -H "Authorization: Bearer \$DEMO" -w ' %{http_code}\\n'    # {"message":"Forbidden"} 403

Who did what, and the lifecycle events it made (each change's audit record
goes to EventBridge; a rule sends them all to a local SQS queue):

  curl -s "$U/audit?limit=5" -H 'X-Owner: alice'               # alice's audit trail, newest first
  $VENV/bin/python scripts/local_events.py show $AWS_ENDPOINT_URL_EVENTBRIDGE   # the events so far (and clears them)

Logs: .run/dev-functions.log, .run/dev-gateway.log, .run/dev-stream.log (the
events function's invocations)   Ctrl-C stops everything.
MSG
wait
