#!/usr/bin/env bash
# make fuzz: runs every cargo-fuzz target for FUZZ_SECONDS (default 60) on
# nightly and prints executions. Each target starts from its committed seeds
# (fuzz/corpus/<target>, read only) and grows its corpus outside git, in
# fuzz/grown/<target>. `make test` replays the seeds on stable
# (tests/inprocess/fuzz_corpus.rs).
#
# make fuzz-cmin: minimises each target's seeds together with what it has
# grown to the FUZZ_SEEDS (default 64) inputs that reach the most edges
# (libFuzzer's merge), keeping every hand-named seed (crash reproducers,
# hand-written cases), so the committed corpus stays a few dozen files.
source "$(dirname "$0")/common.sh"
cd "$ROOT"
SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=(token_string token_bodies validate_bodies dates scopes addresses capability leak_report)
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if [ ! -x "$TOOLS/cargo/bin/cargo-fuzz" ]; then
  echo "==> installing cargo-fuzz into .tools/cargo"
  cargo install --quiet --locked --root "$TOOLS/cargo" cargo-fuzz
fi
PATH="$TOOLS/cargo/bin:$PATH"

if [ "${1:-run}" = cmin ]; then
  for t in "${TARGETS[@]}"; do
    seeds="fuzz/corpus/$t" grown="fuzz/grown/$t" merged="$RUN/cmin-$t"
    rm -rf "$merged" "$RUN/cmin-$t-all" && mkdir -p "$merged" "$grown" "$RUN/cmin-$t-all"
    # libFuzzer's merge records which edges each input reaches; the seeds
    # kept are the few dozen that reach the most (fuzz_select.py), greedily.
    control="$RUN/cmin-$t.control"
    rm -f "$control"  # an old one would resume that merge
    cargo +nightly fuzz run "$t" "$RUN/cmin-$t-all" "$seeds" "$grown" -- -merge=1 -use_counters=0 \
      -merge_control_file="$control" >"$RUN/cmin-$t.log" 2>&1 || { tail -20 "$RUN/cmin-$t.log"; exit 1; }
    "$VENV/bin/python" scripts/fuzz_select.py "$control" "${FUZZ_SEEDS:-64}" | while read -r f; do
      cp "$f" "$merged/"
    done
    # Hand-named seeds (not a 40-hex libFuzzer name) are kept whatever they cover.
    for f in "$seeds"/*; do
      [[ "$(basename "$f")" =~ ^[0-9a-f]{40}$ ]] || cp "$f" "$merged/"
    done
    before=$(find "$seeds" -type f | wc -l)
    rm -rf "$seeds" && mv "$merged" "$seeds"
    echo "$t: $before seeds -> $(find "$seeds" -type f | wc -l)"
  done
  exit 0
fi

echo "| target | executions | seconds | crashes |"
echo "|---|---|---|---|"
for t in "${TARGETS[@]}"; do
  log="$RUN/fuzz-$t.log"
  mkdir -p "fuzz/grown/$t"
  # The first corpus directory is where libFuzzer writes what it finds.
  if cargo +nightly fuzz run "$t" "fuzz/grown/$t" "fuzz/corpus/$t" -- -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=1
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  echo "| $t | ${execs:-?} | $SECONDS_EACH | $crashes |"
  [ "$crashes" = 0 ] || { tail -20 "$log"; exit 1; }
done
