#!/usr/bin/env bash
# make deploy: builds the nine functions for arm64 (Graviton) and deploys
# the stack with SAM. Needs Rust (rustup, with a C compiler for build
# scripts) and Python 3 only: SAM CLI, cargo-lambda and zig (the cross
# linker) come from PyPI into .tools/deploy; no Java, Node, Docker or test
# tools.
#
#   make deploy JWT_ISSUER=https://... JWT_AUDIENCE=...    # deploy (asks before changing)
#   make deploy-check                                      # build and check, no AWS account needed
#   bash scripts/deploy.sh build                           # only the nine arm64 bootstraps
#
# The rest is SAM's: STACK (default tollgate), AWS_REGION or AWS_PROFILE,
# PARAMETERS (more template parameters: "LogLevel=DEBUG KmsKeyArn=..."),
# SAM_DEPLOY_ARGS (more `sam deploy` flags, such as `--no-confirm-changeset`).
# A check with PACKAGE_S3_ENDPOINT set (an S3 API, such as moto's on
# loopback) also runs `sam package` against it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${DEPLOY_VENV:-$ROOT/.tools/deploy}"
BUILD_DIR="$ROOT/.aws-sam/build"
export SAM_CLI_TELEMETRY=0

die() { echo "error: $*" >&2; exit 1; }
command -v python3 >/dev/null || die "python3 is required (Python 3.9+)"
command -v cargo >/dev/null || die "cargo is required: install Rust with rustup"
command -v rustup >/dev/null || die "rustup is required: it adds the aarch64 target"

mode=${1:-deploy}

# The deploy tools, pinned, in a venv of their own.
if ! "$VENV/bin/python" -c "import samcli, ziglang" 2>/dev/null || [ ! -x "$VENV/bin/cargo-lambda" ] || [ ! -x "$VENV/bin/sam" ]; then
  echo "==> installing SAM CLI, cargo-lambda and zig into .tools/deploy (scripts/requirements-deploy.txt)"
  # The interpreter itself, not a link to it that may not last.
  "$(realpath "$(command -v python3)")" -m venv --clear "$VENV"
  "$VENV/bin/pip" install --quiet --upgrade pip >/dev/null
  "$VENV/bin/pip" install --quiet -r "$ROOT/scripts/requirements-deploy.txt"
fi
export PATH="$VENV/bin:$PATH"
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu >/dev/null
mkdir -p "$HOME/.aws-sam"
[ -f "$HOME/.aws-sam/metadata.json" ] || echo '{"lastVersionCheck": "2099-01-01T00:00:00.000000"}' >"$HOME/.aws-sam/metadata.json"

# Every function for arm64 in one cargo build (dependencies compiled once,
# the nine links side by side), into the workspace's target/, so that
# `sam build`, which runs `cargo lambda build --release --arm64 --bin NAME`
# for each function, finds each binary fresh and only copies it into
# .aws-sam/build.
echo "==> the nine functions for arm64 (cargo lambda build --release --arm64, zig as the linker)"
export CARGO_LAMBDA_COMPILER=cargo-zigbuild
# The target directory as sam build names it (absolute), so both see the
# same environment.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# The functions by binary name; each is <Name>Function in template.yaml.
FUNCTIONS=(list create detail patch delete validate authorize events console)
bins=()
for f in "${FUNCTIONS[@]}"; do bins+=(--bin "$f"); done
cargo lambda build --release --arm64 "${bins[@]}"
[ "$mode" = build ] && exit 0
echo "==> sam build (copies the bootstraps; template in .aws-sam/build)"
sam build --beta-features --no-cached --build-dir "$BUILD_DIR" >/dev/null
for f in "${FUNCTIONS[@]}"; do
  f="${f^}"
  b="$BUILD_DIR/${f}Function/bootstrap"
  [ -x "$b" ] || die "sam build produced no bootstrap for ${f}Function"
  [ "$(od -An -tx1 -j18 -N2 "$b" | tr -d ' ')" = b700 ] || die "$b is not an arm64 ELF"
done
echo "nine arm64 bootstraps in $BUILD_DIR"

if [ "$mode" = check ]; then
  # What `sam deploy` would send, checked without an account: the built
  # template (CodeUri now the bootstraps' folders) against CloudFormation's
  # schemas, and packaged (each function zipped and uploaded) when an S3
  # API is at hand.
  echo "==> the built template: sam validate --lint"
  sam validate --lint --template "$BUILD_DIR/template.yaml" >/dev/null
  if [ -n "${PACKAGE_S3_ENDPOINT:-}" ]; then
    echo "==> sam package to the S3 API at $PACKAGE_S3_ENDPOINT"
    # The S3 API may still be starting (make test starts this check first).
    hostport=${PACKAGE_S3_ENDPOINT#*://}
    for _ in $(seq 600); do
      (exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}") 2>/dev/null && break
      sleep 1
    done
    AWS_ENDPOINT_URL_S3="$PACKAGE_S3_ENDPOINT" "$VENV/bin/python" - <<'PY'
import boto3
boto3.client("s3").create_bucket(Bucket="tollgate-package-check")
PY
    AWS_ENDPOINT_URL_S3="$PACKAGE_S3_ENDPOINT" sam package --region "${AWS_REGION:-us-east-1}" --template-file "$BUILD_DIR/template.yaml" \
      --s3-bucket tollgate-package-check --output-template-file "$ROOT/.aws-sam/packaged.yaml" >/dev/null
    n=$(grep -c "CodeUri: s3://tollgate-package-check/" "$ROOT/.aws-sam/packaged.yaml" || true)
    [ "$n" = "${#FUNCTIONS[@]}" ] || die "the packaged template names $n function zips in S3, not ${#FUNCTIONS[@]}"
    echo "packaged: nine function zips uploaded, .aws-sam/packaged.yaml"
  fi
  exit 0
fi

[ -n "${JWT_ISSUER:-}" ] || die "set JWT_ISSUER (your OIDC issuer URL, e.g. a Cognito user pool's) and JWT_AUDIENCE"
[ -n "${JWT_AUDIENCE:-}" ] || die "set JWT_AUDIENCE (the app client id the JWT authorizer accepts)"
echo "==> sam deploy"
# shellcheck disable=SC2086
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
# shellcheck disable=SC2086
sam deploy --template-file "$BUILD_DIR/template.yaml" --stack-name "${STACK:-tollgate}" ${region:+--region "$region"} \
  --resolve-s3 --capabilities CAPABILITY_IAM \
  --parameter-overrides "JwtIssuer=$JWT_ISSUER" "JwtAudience=$JWT_AUDIENCE" ${PARAMETERS:-} \
  ${SAM_DEPLOY_ARGS:-}
