# start_stack DDB_PORT API_PORT NAME [extra env lines]: DynamoDB Local, the
# table, and every function under `cargo lambda watch`, all on loopback.
# Sets STACK_PIDS, TOLLGATE_URL, TOLLGATE_TABLE, AWS_ENDPOINT_URL_DYNAMODB,
# TOLLGATE_HASH_KEY.
start_stack() {
  local ddb_port=$1 api_port=$2 name=$3 extra=${4:-}
  port_free "$api_port" || die "port $api_port is taken: stop what uses it first"
  start_dynamodb "$ddb_port" "$RUN/$name-dynamodb.pid"
  STACK_PIDS="$RUN/$name-dynamodb.pid"
  export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$ddb_port"
  export TOLLGATE_TABLE=tollgate-tokens
  create_table "$AWS_ENDPOINT_URL_DYNAMODB" "$TOLLGATE_TABLE" >/dev/null
  export TOLLGATE_HASH_KEY
  TOLLGATE_HASH_KEY="$(new_hash_key)"
  local envfile="$RUN/$name.env"
  {
    echo "TOLLGATE_TABLE=$TOLLGATE_TABLE"
    echo "TOLLGATE_HASH_KEY=\"$TOLLGATE_HASH_KEY\""
    echo "TOLLGATE_DEV_AUTH=1"
    echo "AWS_ENDPOINT_URL_DYNAMODB=$AWS_ENDPOINT_URL_DYNAMODB"
    echo "AWS_ACCESS_KEY_ID=local"
    echo "AWS_SECRET_ACCESS_KEY=local"
    echo "AWS_REGION=us-east-1"
    echo "AWS_EC2_METADATA_DISABLED=true"
    [ -n "$extra" ] && printf '%s\n' "$extra"
  } >"$envfile"
  chmod 600 "$envfile"
  echo "==> building the six functions"
  (cd "$ROOT" && cargo build --quiet --bins)
  (cd "$ROOT" && exec setsid cargo lambda watch --quiet --ignore-changes -A 127.0.0.1 -P "$api_port" \
    --concurrency "${WATCH_CONCURRENCY:-4}" --env-file "$envfile" >"$RUN/$name-functions.log" 2>&1) &
  echo $! >"$RUN/$name-functions.pid"
  STACK_PIDS="$STACK_PIDS $RUN/$name-functions.pid"
  wait_port 127.0.0.1 "$api_port" 120 || die "cargo lambda watch did not start; see .run/$name-functions.log"
  export TOLLGATE_URL="http://127.0.0.1:$api_port/lambda-url"
  export TOLLGATE_INVOKE_PORT="$api_port"
}

stop_stack() {
  # shellcheck disable=SC2086
  stop_pidfile ${STACK_PIDS:-}
}
