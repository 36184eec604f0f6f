#!/usr/bin/env bash
# Fuzzes every target of fuzz/src/lib.rs with AFL++ (stable Rust, cargo-afl), one after the
# other (PARALLEL=1) or all at once, MINUTES each (default 10), at the lowest CPU priority.
# Afterwards the grown corpus and every crash are copied into fuzz/inputs/<target>/, where the
# normal test run (fuzz/tests/saved_inputs.rs) replays them.
#
#   cargo install cargo-afl            # once; builds AFL++'s runtime for this rustc
#   ./bench/fuzz.sh                    # all targets, 10 minutes each
#   MINUTES=1 TARGETS="ranges link" ./bench/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-10}
TARGETS=${TARGETS:-"names manifest ranges link htpasswd token config layer dockerfile dockerignore"}
OUT=${OUT:-/tmp/berth-fuzz}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
# An explicit --target keeps the instrumented build apart from the ordinary one.
nice -n 19 cargo afl build --release --features afl -p berth-fuzz --target "$TRIPLE"
BIN="$CARGO_TARGET_DIR/$TRIPLE/release/fuzz"
export AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
mkdir -p "$OUT"
fuzz_one() {
  local t=$1
  echo "== $t: $MINUTES min"
  rm -rf "${OUT:?}/$t"
  nice -n 19 cargo afl fuzz -i "fuzz/inputs/$t" -o "$OUT/$t" -V $((MINUTES * 60)) \
    -t 2000 -- "$BIN" "$t" > "$OUT/$t.log" 2>&1 || true
  stats="$OUT/$t/default/fuzzer_stats"
  grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs) ' "$stats" || true
  # The corpus (what AFL++ kept for new coverage) and every crash become saved inputs.
  # (afl-cmin would shrink the corpus, but took over 28 minutes on 500 inputs here.)
  # AFL++ hard-links the inputs it started from into its queue: those are already saved.
  save() { [ -f "$1" ] && ! [ "$1" -ef "$2" ] && cp "$1" "$2"; return 0; }
  for f in "$OUT/$t/default/queue"/id:*; do
    save "$f" "fuzz/inputs/$t/q-$(sha256sum "$f" | cut -c1-16)"
  done
  for f in "$OUT/$t/default/crashes"/id:*; do
    save "$f" "fuzz/inputs/$t/crash-$(sha256sum "$f" | cut -c1-16)"
  done
  return 0
}
if [ "${PARALLEL:-0}" = 1 ]; then
  for t in $TARGETS; do fuzz_one "$t" > "$OUT/$t.summary" & done
  wait
  cat "$OUT"/*.summary
else
  for t in $TARGETS; do fuzz_one "$t"; done
fi
