#!/usr/bin/env bash
# `sam local` against the local stack: the functions a deploy ships (the
# arm64 bootstraps of `sam build`, in .aws-sam/build) in SAM's containers.
#
# make test sources this: sam_local_docker once its stack is up, then
# sam_local_template, sam_local_checks and sam_local_down once the deploy
# build is done. `make sam-local` runs it
# alone: it starts the stack, builds for arm64 if .aws-sam/build is missing,
# runs the checks and stops what it started.
#
# Docker: a daemon that already answers is used and left running; otherwise
# this starts dockerd (root) on a socket of its own, and stops it at the
# end. qemu-user-static, registered with binfmt_misc, runs the arm64
# containers. The base image is a stand-in built from Debian's arm64
# packages (scripts/sam_local.py), because the build machines reach no
# image registry; SAM is told to use it and not to pull.

SAM_LOCAL_DIR="$RUN/sam-local"
SAM_LOCAL_DEBS="$TOOLS/sam-local-debs"
# The local authority the image trusts for the TLS relay (made once).
SAM_LOCAL_CA="$TOOLS/sam-local-ca"
SAM_LOCAL_DOCKERD=
SAM_LOCAL_DOCKER_TMP=
SAM_LOCAL_BRIDGE=
SAM_LOCAL_LEFT=

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Debian's docker.io and qemu-user-static, and the stand-in image's arm64
# packages (apt-get download: arm64 added to dpkg's architectures).
ensure_sam_local_tools() {
  if ! command -v dockerd >/dev/null 2>&1 || [ ! -e /usr/lib/binfmt.d/qemu-aarch64.conf ]; then
    need apt-get "install Debian's docker.io and qemu-user-static"
    echo "==> installing docker.io and qemu-user-static (apt)"
    as_root apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      docker.io qemu-user-static >/dev/null
  fi
  if ! ls "$SAM_LOCAL_DEBS"/*.deb >/dev/null 2>&1; then
    echo "==> downloading busybox-static, libc6 and libgcc-s1 for arm64 (apt) for the stand-in base image"
    dpkg --print-foreign-architectures | grep -qx arm64 || as_root dpkg --add-architecture arm64
    as_root apt-get update -qq >/dev/null
    mkdir -p "$SAM_LOCAL_DEBS.part"
    # (apt's note that root downloads unsandboxed is expected here.)
    (cd "$SAM_LOCAL_DEBS.part" && apt-get download -qq busybox-static:arm64 libc6:arm64 libgcc-s1:arm64 2>&1 \
      | grep -v "unsandboxed as root" || true)
    ls "$SAM_LOCAL_DEBS.part"/*.deb >/dev/null 2>&1 || die "apt-get download of the arm64 packages failed"
    rm -rf "$SAM_LOCAL_DEBS" && mv "$SAM_LOCAL_DEBS.part" "$SAM_LOCAL_DEBS"
  fi
}

sam_local_up() {
  sam_local_docker
  sam_local_template
}

# Docker, qemu, the stand-in image and the relays to the running stack:
# all but the built functions, so make test does it before the deploy
# build ends.
sam_local_docker() {
  mkdir -p "$SAM_LOCAL_DIR"
  # arm64 executables through qemu, the interpreter opened at registration
  # (flag F) so that it works inside containers.
  [ -e /proc/sys/fs/binfmt_misc/register ] || as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
    || as_root sh -c 'cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register'
  if ! docker info >/dev/null 2>&1; then
    # Ports are published by Docker's iptables rules, not its userland
    # proxy: the proxy accepts a connection before the container listens,
    # and SAM, under qemu, then sometimes invoked too early. Socket and
    # state in a short temporary path (a unix socket's is at most 107 bytes).
    SAM_LOCAL_DOCKER_TMP=$(mktemp -d /tmp/tollgate-docker.XXXXXX)
    export DOCKER_HOST="unix://$SAM_LOCAL_DOCKER_TMP/docker.sock"
    as_root dockerd --userland-proxy=false --ip6tables=false --group "$(id -g)" --data-root "$TOOLS/docker" \
      --exec-root "$SAM_LOCAL_DOCKER_TMP/exec" --pidfile "$SAM_LOCAL_DOCKER_TMP/dockerd.pid" \
      -H "$DOCKER_HOST" >"$SAM_LOCAL_DIR/dockerd.log" 2>&1 &
    SAM_LOCAL_DOCKERD=$!
    local i
    for i in $(seq 1 60); do
      docker info >/dev/null 2>&1 && break
      kill -0 "$SAM_LOCAL_DOCKERD" 2>/dev/null || { tail -20 "$SAM_LOCAL_DIR/dockerd.log"; die "dockerd did not start"; }
      sleep 0.5
    done
    docker info >/dev/null 2>&1 || die "dockerd did not answer (log: .run/sam-local/dockerd.log)"
  fi
  TOLLGATE_SAM_IMAGE=$("$VENV/bin/python" "$ROOT/scripts/sam_local.py" image "$SAM_LOCAL_DEBS" "$SAM_LOCAL_CA")
  # The containers reach DynamoDB Local and moto (on loopback) through
  # relays on the bridge's host address, which only this machine's
  # containers can reach; the scanner keys through one that speaks TLS
  # (the function takes http from loopback only).
  local bridge ports=() port
  # The bridge's own IPv4 address, read off its interface (the network's
  # IPAM gateway is blank on a daemon's first start).
  bridge=$(docker network inspect bridge -f '{{index .Options "com.docker.network.bridge.name"}}' || true)
  bridge=$(ip -4 -o addr show dev "${bridge:-docker0}" 2>/dev/null | awk '{ print $4; exit }' || true)
  [ -n "$bridge" ] || die "the Docker bridge has no IPv4 address (.run/sam-local/dockerd.log)"
  # address/prefix: the relays bind the address and admit that subnet only.
  port_of() { [[ "$1" =~ ^http://127\.0\.0\.1:([0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }
  for port in "$(port_of "$AWS_ENDPOINT_URL_DYNAMODB")" "$(port_of "$AWS_ENDPOINT_URL_SECRETS_MANAGER")"; do
    [[ " ${ports[*]} " == *" $port "* ]] || ports+=("$port")
  done
  port=$(port_of "${TOLLGATE_GITHUB_KEYS_URL:-}") && ports+=("$port:tls")
  ("$VENV/bin/python" "$ROOT/scripts/sam_local.py" relay "$bridge" "$SAM_LOCAL_CA" "${ports[@]}" \
    >"$SAM_LOCAL_DIR/relay.log" 2>&1) &
  echo $! >"$SAM_LOCAL_DIR/relay.pid"
  wait_port "${bridge%/*}" "${ports[0]}" 20 || die "the relay to loopback did not start (.run/sam-local/relay.log)"
  SAM_LOCAL_BRIDGE=${bridge%/*}
}

# The template sam local reads: the built one, for the relays and the stack.
sam_local_template() {
  "$VENV/bin/python" "$ROOT/scripts/sam_local.py" template "$ROOT/.aws-sam/build" "$SAM_LOCAL_DIR" "$SAM_LOCAL_BRIDGE"
  # SAM asks STS for the account id before each run: moto answers at once
  # (AWS's endpoint would leave it waiting for a timeout here).
  export AWS_ENDPOINT_URL_STS="$AWS_ENDPOINT_URL_SECRETS_MANAGER"
  export TOLLGATE_SAM_IMAGE TOLLGATE_SAM_TEMPLATE="$SAM_LOCAL_DIR/template.yaml" \
    TOLLGATE_SAM_ENV_VARS="$SAM_LOCAL_DIR/env.json"
}

# Every event through `sam local invoke` and a `sam local start-api` round
# trip (tests/sam_local_test.py), then tests/over_http/events.rs's whole
# flow through `sam local start-lambda` (its containers kept warm).
sam_local_checks() {
  # The functions' logs, a file per SAM command, for make test's secret
  # scan (tests/secret_scan.rs reads them beside the stack's).
  export TOLLGATE_SAM_LOGS="$SAM_LOCAL_DIR/logs"
  rm -rf "$TOLLGATE_SAM_LOGS" && mkdir -p "$TOLLGATE_SAM_LOGS"
  "$VENV/bin/python" "$ROOT/tests/sam_local_test.py" 2>&1
  local port
  port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  (cd "$ROOT" && exec setsid sam local start-lambda --host 127.0.0.1 --port "$port" --warm-containers EAGER \
    --template "$TOLLGATE_SAM_TEMPLATE" --env-vars "$TOLLGATE_SAM_ENV_VARS" \
    --skip-pull-image --invoke-image "$TOLLGATE_SAM_IMAGE" >"$TOLLGATE_SAM_LOGS/start-lambda.log" 2>&1) &
  echo $! >"$SAM_LOCAL_DIR/start-lambda.pid"
  wait_port 127.0.0.1 "$port" 120 || die "sam local start-lambda did not listen (.run/sam-local/logs/start-lambda.log)"
  if cargo nextest --version >/dev/null 2>&1; then
    TOLLGATE_SAM_LAMBDA_URL="http://127.0.0.1:$port" cargo nextest run --workspace \
      -E 'binary(over_http) and test(=events::every_event_through_lambda_invoke)' \
      --hide-progress-bar --status-level fail --final-status-level fail 2>&1
  else
    TOLLGATE_SAM_LAMBDA_URL="http://127.0.0.1:$port" cargo test --quiet --test over_http -- \
      --exact events::every_event_through_lambda_invoke 2>&1
  fi
  stop_pidfile "$SAM_LOCAL_DIR/start-lambda.pid"
}

# Stops what sam_local_up started; a daemon that was running before is
# left running, without this run's containers. Never fails: it also runs
# from the EXIT trap, before the stack is stopped.
sam_local_down() {
  stop_pidfile "$SAM_LOCAL_DIR/start-lambda.pid" "$SAM_LOCAL_DIR/relay.pid"
  if [ -n "${TOLLGATE_SAM_IMAGE:-}" ] && docker info >/dev/null 2>&1; then
    docker ps -aq --filter "ancestor=$TOLLGATE_SAM_IMAGE" | xargs -r docker rm -f >/dev/null 2>&1 || true
  fi
  if [ -n "$SAM_LOCAL_DOCKER_TMP" ]; then
    local pid i
    pid=$(cat "$SAM_LOCAL_DOCKER_TMP/dockerd.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
      as_root kill "$pid" 2>/dev/null || true
      for i in $(seq 1 60); do
        [ -e "/proc/$pid" ] || break
        sleep 0.5
      done
    fi
    as_root rm -rf "$SAM_LOCAL_DOCKER_TMP" 2>/dev/null || true
    SAM_LOCAL_LEFT=$SAM_LOCAL_DOCKER_TMP SAM_LOCAL_DOCKER_TMP=
  fi
}

# After sam_local_down: no container of this run, no daemon it started and
# no SAM server of its template.
sam_local_left_nothing() {
  if [ -n "${TOLLGATE_SAM_IMAGE:-}" ] && docker info >/dev/null 2>&1; then
    [ -z "$(docker ps -aq --filter "ancestor=$TOLLGATE_SAM_IMAGE")" ] || die "sam local left containers running"
  fi
  if [ -n "${SAM_LOCAL_LEFT:-}" ] && pgrep -f "$SAM_LOCAL_LEFT" >/dev/null; then
    die "sam local left dockerd or containerd running"
  fi
  ! pgrep -f "$SAM_LOCAL_DIR/template.yaml" >/dev/null || die "sam local left start-api or start-lambda running"
  echo "sam local: no container, no daemon and no SAM server left running"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  source "$(dirname "$0")/common.sh"
  source "$ROOT/scripts/stack.sh"
  cd "$ROOT"
  ensure_tools
  ensure_sam_local_tools
  # The arm64 build and `sam build`, unless a deploy check made them.
  [ -f .aws-sam/build/template.yaml ] || bash scripts/deploy.sh check
  trap 'sam_local_down; stop_stack' EXIT
  # DynamoDB Local, moto on its port + 50, the functions, the scanner keys.
  start_stack "${SAM_LOCAL_DDB_PORT:-18400}" "${SAM_LOCAL_API_PORT:-18500}" sam-local ""
  start_scanner_keys "${SAM_LOCAL_SCANNER_PORT:-18510}"
  sam_local_up
  sam_local_checks
  sam_local_down
  sam_local_left_nothing
  echo "make sam-local: every check passed"
fi
