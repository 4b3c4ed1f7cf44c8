#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target for FUZZ_SECONDS (default 60) on
# nightly, growing the corpus in fuzz/corpus/<target>; prints executions.
# `make test` replays the committed corpus on stable (tests/fuzz_corpus.rs).
source "$(dirname "$0")/common.sh"
cd "$ROOT"
SECONDS_EACH=${FUZZ_SECONDS:-60}
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if [ ! -x "$TOOLS/cargo/bin/cargo-fuzz" ]; then
  echo "==> installing cargo-fuzz into .tools/cargo"
  cargo install --quiet --locked --root "$TOOLS/cargo" cargo-fuzz
fi
PATH="$TOOLS/cargo/bin:$PATH"
echo "| target | executions | seconds | crashes |"
echo "|---|---|---|---|"
for t in token_string token_bodies validate_bodies dates scopes addresses; do
  log="$RUN/fuzz-$t.log"
  if cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  echo "| $t | ${execs:-?} | $SECONDS_EACH | $crashes |"
  [ "$crashes" = 0 ] || { tail -20 "$log"; exit 1; }
done
