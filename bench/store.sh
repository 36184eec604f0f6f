#!/usr/bin/env bash
# The store's put and get of a 1 GiB blob on the filesystem backend, side by side with
# `openssl dgst -sha256` and `cat FILE > /dev/null` on the same file, in one run.
# Prints medians and the ratios berth/peer. Needs hyperfine and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-7}
cargo build --release -q -p berth-storage --example store_bench
BIN=${CARGO_TARGET_DIR:-target}/release/examples/store_bench
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FILE=$WORK/blob
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$FILE"
DIGEST=sha256:$(openssl dgst -sha256 -r "$FILE" | cut -d' ' -f1)
ROOT=$WORK/store
"$BIN" put "$ROOT" "$FILE" "$DIGEST"   # warm the page cache and create the blob for `get`
hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$WORK/put.json" \
  --prepare "rm -rf $ROOT/blobs; sync" \
  -n "openssl dgst -sha256" "openssl dgst -sha256 $FILE" \
  -n "berth put" "$BIN put $ROOT $FILE $DIGEST" >/dev/null
"$BIN" put "$ROOT" "$FILE" "$DIGEST"
hyperfine --warmup 1 --runs "$RUNS" --export-json "$WORK/get.json" \
  -n "cat" "cat $FILE > /dev/null" \
  -n "berth get" "$BIN get $ROOT $DIGEST > /dev/null" >/dev/null
python3 - "$WORK/put.json" "$WORK/get.json" "$SIZE_MIB" <<'PY'
import json, sys
def medians(path):
    return {r["command"]: r["median"] for r in json.load(open(path))["results"]}
put, get, mib = medians(sys.argv[1]), medians(sys.argv[2]), int(sys.argv[3])
gib = mib / 1024
for name, t in list(put.items()) + list(get.items()):
    print(f"{name:22s} median {t*1000:8.1f} ms  {gib/t:6.2f} GiB/s")
r_put = put["berth put"] / put["openssl dgst -sha256"]
r_get = (get["cat"] / get["berth get"])
print(f"put: berth / openssl time = {r_put:.2f}x (target <= 1.3x)")
print(f"get: berth speed / cat speed = {r_get:.2f}x (target >= 0.8x)")
PY
