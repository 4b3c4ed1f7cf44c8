# start_stack DDB_PORT API_PORT NAME [extra env lines]: DynamoDB Local, the
# table and its stream, moto (Secrets Manager holding the keyring,
# EventBridge and SQS), every function under `cargo lambda watch`, and the
# stream poller that plays the events function's event source mapping, all
# on loopback. The functions read the keyring from the secret at init, as
# deployed; no key material is in their environment. Sets STACK_PIDS,
# TOLLGATE_URL, TOLLGATE_TABLE, AWS_ENDPOINT_URL_DYNAMODB,
# AWS_ENDPOINT_URL_SECRETS_MANAGER (and _EVENTBRIDGE, _SQS: the same moto),
# TOLLGATE_HASH_KEY_SECRET, TOLLGATE_HASH_KEY (the ring's `v1` key, for
# in-process apps), TOLLGATE_KEYRING (the secret's value, for the scan),
# EVENTS_QUEUE_URL (every event, see scripts/local_events.py),
# DEAD_LETTER_QUEUE_URL and TOLLGATE_STREAM_LOG (the poller's invocations).
# The web console's sign-in, for the functions' environment: the
# development issuer that the local gateway on port $1 serves (its client
# id is the management routes' JWT audience, dev_issuer.AUDIENCE).
console_env() {
  local issuer="http://127.0.0.1:$1/dev-issuer"
  printf '%s\n' "TOLLGATE_CONSOLE_AUTHORIZATION_ENDPOINT=$issuer/authorize" \
    "TOLLGATE_CONSOLE_TOKEN_ENDPOINT=$issuer/token" \
    "TOLLGATE_CONSOLE_LOGOUT_ENDPOINT=$issuer/logout" \
    "TOLLGATE_CONSOLE_CLIENT_ID=tollgate-local"
}

start_stack() {
  local ddb_port=$1 api_port=$2 name=$3 extra=${4:-}
  port_free "$api_port" || die "port $api_port is taken: stop what uses it first"
  start_dynamodb "$ddb_port" "$RUN/$name-dynamodb.pid"
  STACK_PIDS="$RUN/$name-dynamodb.pid"
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
  export TOLLGATE_TABLE=tollgate-tokens
  create_table "$AWS_ENDPOINT_URL_DYNAMODB" "$TOLLGATE_TABLE" >/dev/null
  local sm_port=$((ddb_port + 50))
  start_local_aws "$sm_port" "$RUN/$name-local-aws.pid"
  STACK_PIDS="$STACK_PIDS $RUN/$name-local-aws.pid"
  export AWS_ENDPOINT_URL_SECRETS_MANAGER="http://127.0.0.1:$sm_port"
  export AWS_ENDPOINT_URL_EVENTBRIDGE="$AWS_ENDPOINT_URL_SECRETS_MANAGER" AWS_ENDPOINT_URL_SQS="$AWS_ENDPOINT_URL_SECRETS_MANAGER"
  export EVENTS_QUEUE_URL DEAD_LETTER_QUEUE_URL
  eval "$("$VENV/bin/python" "$ROOT/scripts/local_events.py" setup "$AWS_ENDPOINT_URL_EVENTBRIDGE")"
  export TOLLGATE_HASH_KEY TOLLGATE_KEYRING TOLLGATE_HASH_KEY_SECRET=tollgate/hash-key
  TOLLGATE_HASH_KEY="$(new_hash_key)"
  TOLLGATE_KEYRING="{\"current\": \"k1\", \"keys\": {\"v1\": \"$TOLLGATE_HASH_KEY\", \"k1\": \"$(new_hash_key)\"}}"
  printf '%s' "$TOLLGATE_KEYRING" | put_secret "$AWS_ENDPOINT_URL_SECRETS_MANAGER" "$TOLLGATE_HASH_KEY_SECRET"
  local envfile="$RUN/$name.env"
  {
    echo "TOLLGATE_TABLE=$TOLLGATE_TABLE"
    echo "TOLLGATE_HASH_KEY_SECRET=$TOLLGATE_HASH_KEY_SECRET"
    echo "AWS_ENDPOINT_URL_SECRETS_MANAGER=$AWS_ENDPOINT_URL_SECRETS_MANAGER"
    echo "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB"
    echo "AWS_ENDPOINT_URL_EVENTBRIDGE=$AWS_ENDPOINT_URL_EVENTBRIDGE"
    echo "TOLLGATE_EVENT_BUS=default"
    echo "AWS_ACCESS_KEY_ID=local"
    echo "AWS_SECRET_ACCESS_KEY=local"
    echo "AWS_REGION=us-east-1"
    echo "AWS_EC2_METADATA_DISABLED=true"
    [ -n "$extra" ] && printf '%s\n' "$extra"
  } >"$envfile"
  chmod 600 "$envfile"
  echo "==> building the functions"
  (cd "$ROOT" && cargo build --quiet --bins)
  # No key material in the functions' environment: they read the secret.
  (cd "$ROOT" && exec env -u TOLLGATE_HASH_KEY -u TOLLGATE_KEYRING setsid cargo lambda watch --quiet --ignore-changes -A 127.0.0.1 -P "$api_port" \
    --concurrency "${WATCH_CONCURRENCY:-4}" --env-file "$envfile" >"$RUN/$name-functions.log" 2>&1) &
  echo $! >"$RUN/$name-functions.pid"
  STACK_PIDS="$STACK_PIDS $RUN/$name-functions.pid"
  wait_port 127.0.0.1 "$api_port" 120 || die "cargo lambda watch did not start; see .run/$name-functions.log"
  export TOLLGATE_INVOKE_PORT="$api_port"
  # The events function's event source mapping, played on DynamoDB Local's
  # stream with the template's filters (scripts/stream_poller.py).
  export TOLLGATE_STREAM_LOG="$RUN/$name-stream.log"
  : >"$TOLLGATE_STREAM_LOG"
  ("$VENV/bin/python" "$ROOT/scripts/stream_poller.py" --endpoint "$AWS_ENDPOINT_URL_DYNAMODB" \
    --table "$TOLLGATE_TABLE" --template "$ROOT/template.yaml" --invoke-url "http://127.0.0.1:$api_port" \
    --sqs-endpoint "$AWS_ENDPOINT_URL_SQS" --dead-letter-queue "$DEAD_LETTER_QUEUE_URL" \
    --log "$TOLLGATE_STREAM_LOG" >"$RUN/$name-stream-poller.log" 2>&1) &
  echo $! >"$RUN/$name-stream-poller.pid"
  STACK_PIDS="$STACK_PIDS $RUN/$name-stream-poller.pid"
}

# start_gateway PORT INVOKE_PORT NAME OWNERS [URL_VAR]: the local API gateway
# on 127.0.0.1, serving the routes and authorizers of template.yaml and of
# the example app's template through the Lambda Invoke API of `cargo lambda
# watch`, with the JWT authorizer played against a local development issuer
# whose key is made here once. OWNERS is the example app's TollgateOwners
# (whose tokens its API accepts; empty: an API bound to no one). Sets
# URL_VAR (default TOLLGATE_URL) and TOLLGATE_DEV_ISSUER_KEY.
start_gateway() {
  local port=$1 invoke_port=$2 name=$3 owners=$4 url_var=${5:-TOLLGATE_URL}
  port_free "$port" || die "port $port is taken: stop what uses it first"
  export TOLLGATE_DEV_ISSUER_KEY="$RUN/dev-issuer.pem"
  "$VENV/bin/python" "$ROOT/scripts/dev_issuer.py" init "$TOLLGATE_DEV_ISSUER_KEY" >/dev/null
  ("$VENV/bin/python" "$ROOT/scripts/local_gateway.py" --port "$port" --invoke-port "$invoke_port" \
    --template "$ROOT/template.yaml" --template "$ROOT/examples/protected-api/template.yaml" \
    --parameter "TollgateOwners=$owners" --parameter "TollgateIssuer=$TOLLGATE_ISSUER" \
    --issuer-key "$TOLLGATE_DEV_ISSUER_KEY" >"$RUN/$name-gateway.log" 2>&1) &
  echo $! >"$RUN/$name-gateway.pid"
  STACK_PIDS="$STACK_PIDS $RUN/$name-gateway.pid"
  wait_port 127.0.0.1 "$port" 20 || die "the local gateway did not start; see .run/$name-gateway.log"
  export "$url_var=http://127.0.0.1:$port"
}

# start_scanner_keys PORT: GitHub's secret-scanning keys, played by a key
# pair on loopback (scripts/scanner_keys.py); the tests sign their reports
# with it. After start_stack. Sets TOLLGATE_SCANNER_KEYS (the key pair's
# folder) and TOLLGATE_GITHUB_KEYS_URL.
start_scanner_keys() {
  local port=$1
  export TOLLGATE_SCANNER_KEYS="$RUN/scanner" TOLLGATE_GITHUB_KEYS_URL="http://127.0.0.1:$port/public_keys.json"
  "$VENV/bin/python" "$ROOT/scripts/scanner_keys.py" init "$TOLLGATE_SCANNER_KEYS"
  port_free "$port" || die "port $port is taken: stop what uses it first"
  ("$VENV/bin/python" "$ROOT/scripts/scanner_keys.py" serve "$TOLLGATE_SCANNER_KEYS" "$port" \
    >"$RUN/scanner-keys.log" 2>&1) &
  echo $! >"$RUN/scanner-keys.pid"
  STACK_PIDS="$STACK_PIDS $RUN/scanner-keys.pid"
  wait_port 127.0.0.1 "$port" 20 || die "the scanner key server did not start"
}

stop_stack() {
  # shellcheck disable=SC2086
  stop_pidfile ${STACK_PIDS:-}
}
