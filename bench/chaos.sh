#!/usr/bin/env bash
# The long chaos run: 100 concurrent pushes (docker, skopeo, and pushers that send each blob in
# one request or in chunks) while `berth serve` is SIGKILLed 4 times at random moments and
# restarted on the same storage, on the filesystem, s3s-fs and moto. It is the test
# tests/chaos.rs (the suite runs it at 24 pushes and 3 kills) at full scale; needs root (dockerd).
#   ./bench/chaos.sh                 # PUSHES=100 KILLS=4 ROUNDS=1
#   ROUNDS=5 ./bench/chaos.sh        # five rounds in a row, each with its own random seed
set -euo pipefail
cd "$(dirname "$0")/.."
PUSHES=${PUSHES:-100}
KILLS=${KILLS:-4}
ROUNDS=${ROUNDS:-1}
for round in $(seq "$ROUNDS"); do
  echo "round $round of $ROUNDS: $PUSHES pushes, $KILLS kills"
  BERTH_CHAOS_PUSHES=$PUSHES BERTH_CHAOS_KILLS=$KILLS \
    cargo test --test tests chaos:: -- --nocapture --test-threads 3 2>&1 |
    grep -E '^(chaos on|kill [0-9]|[0-9]+ kills|test |test result)|panicked|assert'
done
