#!/usr/bin/env bash
# The registry on S3, side by side in one run: berth and CNCF distribution (Debian's
# docker-registry), each on a bucket of its own on one moto S3 server (moto_server, loopback).
# Pushes the same small image to both, then at 32 connections: HEAD of a blob (ab: wrk hangs on
# HEAD; its rate and p50/p99 latency), GET of the manifest by tag and GET of a 64 KiB blob (wrk); each server's RSS idle, its
# peak while loaded (sampled every 0.1 s) and after; moto's CPU time per run, which shows how
# many S3 requests each registry made. Prints req/s and the ratios berth / distribution.
# Then, PUSH_RUNS times (default 3) and each registry on a fresh bucket: a `skopeo copy` push of
# a 3 × PUSH_MIB MiB image (default 64; random bytes, gzip -1, so skopeo sends the layers as
# they are) and a single-stream curl GET of one of its layers;
# prints the median times and the ratios berth / distribution.
#   ./bench/registry_s3.sh                      # DURATION=10s PUSH_RUNS=3 PUSH_MIB=64
#   BERTH=path/to/release/berth DURATION=5s ./bench/registry_s3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
SECS=${DURATION%s}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || cargo build --release -q --bin berth
for t in wrk ab moto_server python3 skopeo curl /usr/bin/docker-registry; do
  command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }
done
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-s3bench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
[ -n "${KEEP_LOGS:-}" ] && trap 'cat "$WORK"/*.log >&2; cleanup' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

M=$(port); B=$(port); D=$(port)
KEY=benchkey; SECRET=benchsecret
moto_server -H 127.0.0.1 -p "$M" >/dev/null 2>&1 & PIDS+=($!); MPID=$!
python3 - "$M" "$KEY" "$SECRET" <<'PY'
import sys, time, boto3
port, key, secret = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=key,
                  aws_secret_access_key=secret, region_name="us-east-1")
for _ in range(200):
    try:
        s3.list_buckets(); break
    except Exception:
        time.sleep(0.05)
for b in ("berth-bench", "dist-bench"):
    s3.create_bucket(Bucket=b)
PY
cat > "$WORK/berth.toml" <<TOML
[storage]
backend = "s3"
bucket = "berth-bench"
endpoint = "http://127.0.0.1:$M"
region = "us-east-1"
path_style = true
access_key_id = "$KEY"
secret_access_key = "$SECRET"
TOML
"$BERTH" serve --config "$WORK/berth.toml" --listen "127.0.0.1:$B" >/dev/null 2>"$WORK/berth.log" & PIDS+=($!); BPID=$!
cat > "$WORK/dist.yml" <<YML
version: 0.1
log: { level: error }
storage:
  s3: { accesskey: $KEY, secretkey: $SECRET, region: us-east-1, regionendpoint: "http://127.0.0.1:$M",
        bucket: dist-bench, secure: false, v4auth: true }
  # Serve the bytes itself, as berth does (by default it answers 307 to a presigned S3 URL).
  redirect: { disable: true }
http: { addr: 127.0.0.1:$D }
YML
# (AWS_CA_BUNDLE, when set, makes its AWS SDK refuse its own HTTP transport.)
env -u AWS_CA_BUNDLE /usr/bin/docker-registry serve "$WORK/dist.yml" >/dev/null 2>"$WORK/dist.log" & PIDS+=($!); DPID=$!

# The same image on both: a config, a 64 KiB layer, the manifest; prints the two blob paths.
python3 - "$B" "$D" > "$WORK/paths" <<'PY'
import hashlib, http.client, json, os, sys, time
def wait(port):
    for _ in range(400):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/v2/")
            if c.getresponse().status == 200: return
        except OSError: pass
        time.sleep(0.05)
    raise SystemExit(f"registry on {port} did not start")
def push(c, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    c.request("POST", "/v2/bench/app/blobs/uploads/"); r = c.getresponse(); r.read()
    assert r.status == 202, r.status
    loc = r.getheader("Location"); loc = loc[loc.index("/v2/"):]
    sep = "&" if "?" in loc else "?"
    c.request("PUT", f"{loc}{sep}digest={d}", body=data, headers={"Content-Length": str(len(data))})
    r = c.getresponse(); r.read(); assert r.status == 201, r.status
    return d
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
layer = os.urandom(64 << 10)
for port in map(int, sys.argv[1:3]):
    wait(port)
    c = http.client.HTTPConnection("127.0.0.1", port)
    cd, ld = push(c, config), push(c, layer)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}]}).encode()
    c.request("PUT", "/v2/bench/app/manifests/latest", body=m, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    r = c.getresponse(); r.read(); assert r.status == 201, r.status
print(f"/v2/bench/app/blobs/{cd}")
print(f"/v2/bench/app/blobs/{ld}")
PY
echo "$(date +%T) pushed" >&2
CONFIG_PATH=$(sed -n 1p "$WORK/paths"); LAYER_PATH=$(sed -n 2p "$WORK/paths")

rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }   # user + system ticks
# Runs a command while sampling PID's RSS; prints the peak (KiB) to $WORK/peak.
sampled() {
  local pid=$1; shift
  ( peak=0; while kill -0 "$pid" 2>/dev/null; do r=$(rss "$pid"); [ "$r" -gt "$peak" ] && peak=$r; echo "$peak" > "$WORK/peak"; sleep 0.1; done ) &
  local sampler=$!
  "$@"
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
}
heads() {
  ab -k -i -q -c 32 -t "$SECS" -n 100000000 "$1" > "$WORK/ab.out" 2>&1 || true
  if ! grep -q "^Failed requests: *0" "$WORK/ab.out" || grep -q "Non-2xx" "$WORK/ab.out"; then
    echo "errors from HEAD $1:" >&2; cat "$WORK/ab.out" >&2; exit 1
  fi
  awk '/Requests per second/ {print $4}' "$WORK/ab.out" > "$WORK/rate"
  awk '$1 == "50%" {print $2}' "$WORK/ab.out" > "$WORK/head.p50"
  awk '$1 == "99%" {print $2}' "$WORK/ab.out" > "$WORK/head.p99"
}
gets() {
  wrk -t2 -c32 -d"$DURATION" --timeout 10s -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$1" > "$WORK/wrk.out"
  if grep -q "Non-2xx\|Socket errors" "$WORK/wrk.out"; then echo "errors from $1:" >&2; cat "$WORK/wrk.out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out" > "$WORK/rate"
}
# One registry through the three loads: "idle head manifest layer peak after moto-ticks".
measure() {
  local pid=$1 port=$2 idle peak=0 out m0
  idle=$(rss "$pid"); m0=$(cpu "$MPID")
  out=""
  for what in "heads http://127.0.0.1:$port$CONFIG_PATH" \
              "gets http://127.0.0.1:$port/v2/bench/app/manifests/latest" \
              "gets http://127.0.0.1:$port$LAYER_PATH"; do
    # shellcheck disable=SC2086
    sampled "$pid" $what
    out="$out $(cat "$WORK/rate")"
    p=$(cat "$WORK/peak"); [ "$p" -gt "$peak" ] && peak=$p
  done
  echo "$idle$out $peak $(rss "$pid") $(( $(cpu "$MPID") - m0 )) $(cat "$WORK/head.p50") $(cat "$WORK/head.p99")"
}
echo "$(date +%T) measuring berth" >&2
read -r BI BH BM BL BP BA BT B50 B99 <<< "$(measure "$BPID" "$B")"
echo "$(date +%T) measuring distribution" >&2
read -r DI DH DM DL DP DA DT D50 D99 <<< "$(measure "$DPID" "$D")"
python3 - "$BI" "$BH" "$BM" "$BL" "$BP" "$BA" "$BT" "$DI" "$DH" "$DM" "$DL" "$DP" "$DA" "$DT" \
  "$B50" "$B99" "$D50" "$D99" <<'PY'
import sys
bi, bh, bm, bl, bp, ba, bt, di, dh, dm, dl, dp, da, dt, b50, b99, d50, d99 = map(float, sys.argv[1:])
mib = lambda k: f"{k/1024:.1f} MiB"
print(f"blob HEAD req/s:         berth {bh:9,.0f}  distribution {dh:9,.0f}  = {bh/dh:.2f}x")
print(f"blob HEAD latency at 32: berth p50 {b50:.0f} ms, p99 {b99:.0f} ms; distribution p50 {d50:.0f} ms, p99 {d99:.0f} ms = {b50/d50:.2f}x")
print(f"manifest GET req/s:      berth {bm:9,.0f}  distribution {dm:9,.0f}  = {bm/dm:.2f}x")
print(f"64 KiB blob GET req/s:   berth {bl:9,.0f}  distribution {dl:9,.0f}  = {bl/dl:.2f}x")
print(f"RSS idle:                berth {mib(bi)}  distribution {mib(di)}  = {bi/di:.2f}x")
print(f"RSS peak under load:     berth {mib(bp)}  distribution {mib(dp)}  = {bp/dp:.2f}x (target <= 1x)")
print(f"RSS after load:          berth {mib(ba)}  distribution {mib(da)}  = {ba/da:.2f}x (target <= 1x)")
print(f"moto CPU during the runs: berth's {bt/100:.1f} s, distribution's {dt/100:.1f} s")
PY

# ---- push and stream: skopeo copy of a 3 × PUSH_MIB MiB image, then a GET of one layer ----
kill "$BPID" "$DPID"; wait "$BPID" "$DPID" 2>/dev/null || true
PUSH_MIB=${PUSH_MIB:-64}
python3 bench/oci_image.py "$WORK/oci" 3 "$PUSH_MIB"
# bucket new|drop NAME: creates a bucket, or empties (objects and open multipart uploads) and
# deletes it, so that moto's memory does not grow with the runs.
bucket() {
  python3 - "$M" "$KEY" "$SECRET" "$1" "$2" <<'PY'
import sys, boto3
port, key, secret, what, name = sys.argv[1:6]
s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=key,
                  aws_secret_access_key=secret, region_name="us-east-1")
if what == "new":
    s3.create_bucket(Bucket=name)
else:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for o in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=o["Key"])
    for u in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
    s3.delete_bucket(Bucket=name)
PY
}
wait_v2() {
  for _ in $(seq 400); do curl -sf -o /dev/null "http://127.0.0.1:$1/v2/" && return; sleep 0.05; done
  echo "registry on $1 did not start" >&2; exit 1
}
ms_since() { echo $(( (${EPOCHREALTIME/./} - $1) / 1000 )); }
# push_and_get WHO RUN: starts WHO on a fresh bucket, times the push and the GET of its first
# layer (checked byte for byte by its digest), appends "push_ms get_ms" to $WORK/t.WHO.
push_and_get() {
  local who=$1 b="$1-push-$2" port t0 push get pid
  port=$(port)
  bucket new "$b"
  if [ "$who" = berth ]; then
    sed "s/^bucket = .*/bucket = \"$b\"/" "$WORK/berth.toml" > "$WORK/push.toml"
    "$BERTH" serve --config "$WORK/push.toml" --listen "127.0.0.1:$port" >/dev/null 2>>"$WORK/berth.log" & pid=$!
  else
    sed -e "s/bucket: dist-bench/bucket: $b/" -e "s/127.0.0.1:$D/127.0.0.1:$port/" "$WORK/dist.yml" > "$WORK/push.yml"
    env -u AWS_CA_BUNDLE /usr/bin/docker-registry serve "$WORK/push.yml" >/dev/null 2>>"$WORK/dist.log" & pid=$!
  fi
  PIDS+=("$pid")
  wait_v2 "$port"
  t0=${EPOCHREALTIME/./}
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/oci:latest" "docker://127.0.0.1:$port/push/x:latest" \
    || { echo "$who: skopeo push failed" >&2; exit 1; }
  push=$(ms_since "$t0")
  layer=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$port/v2/push/x/manifests/latest" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["layers"][0]["digest"])')
  t0=${EPOCHREALTIME/./}
  got=$(curl -sf "http://127.0.0.1:$port/v2/push/x/blobs/$layer" | sha256sum | cut -d' ' -f1)
  get=$(ms_since "$t0")
  [ "sha256:$got" = "$layer" ] || { echo "$who served other bytes for $layer" >&2; exit 1; }
  kill "$pid"; wait "$pid" 2>/dev/null || true
  bucket drop "$b"
  echo "$push $get" >> "$WORK/t.$who"
}
for run in $(seq "${PUSH_RUNS:-3}"); do
  echo "$(date +%T) push run $run" >&2
  # Alternate which goes first, so neither always meets a fresher moto.
  if [ $((run % 2)) = 1 ]; then push_and_get berth "$run"; push_and_get dist "$run"
  else push_and_get dist "$run"; push_and_get berth "$run"; fi
done
python3 - "$WORK/t.berth" "$WORK/t.dist" "$PUSH_MIB" <<'PY'
import statistics, sys
def cols(p): rows = [list(map(int, l.split())) for l in open(p)]; return [r[0] for r in rows], [r[1] for r in rows]
(bp, bg), (dp, dg) = cols(sys.argv[1]), cols(sys.argv[2]); mib = int(sys.argv[3])
med = statistics.median
print(f"skopeo push 3x{mib} MiB (median of {len(bp)}): berth {med(bp):,.0f} ms  distribution {med(dp):,.0f} ms  = {med(bp)/med(dp):.2f}x time (runs: berth {bp}, distribution {dp})")
print(f"{mib} MiB layer GET (median of {len(bg)}):    berth {med(bg):,.0f} ms  distribution {med(dg):,.0f} ms  = {med(bg)/med(dg):.2f}x time (runs: berth {bg}, distribution {dg})")
PY
