#!/usr/bin/env bash
# Registry speed, side by side in one run: manifest GET by tag at 32 connections (wrk) against
# berth, CNCF distribution (Debian's docker-registry) and nginx serving the same bytes as a
# static file; resident memory of berth and distribution idle and after the load; HEAD of a
# blob (ab) and GET of a small blob (wrk) against nginx serving the same bytes. berth and nginx
# take turns, ROUNDS (3) times each, and the medians are compared.
# Then a 256 MiB blob GET (one stream, curl, the two taking turns) against nginx serving the same
# file, and a `skopeo copy` push of a 3×64 MiB image to berth and to distribution (medians).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || cargo build --release -q --bin berth
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-regbench.XXXXXX")
chmod 755 "$WORK"   # nginx's workers run as an unprivileged user
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

B=$(port); D=$(port); N=$(port)
"$BERTH" serve --listen "127.0.0.1:$B" --root "$WORK/berth" >/dev/null 2>"$WORK/berth.log" & PIDS+=($!); BPID=$!
cat > "$WORK/dist.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/dist } }
http: { addr: 127.0.0.1:$D }
YML
/usr/bin/docker-registry serve "$WORK/dist.yml" >/dev/null 2>&1 & PIDS+=($!); DPID=$!
mkdir -p "$WORK/static/v2/bench/app/manifests"
cat > "$WORK/nginx.conf" <<NGX
worker_processes 2; pid $WORK/nginx.pid; error_log $WORK/nginx.err;
events { worker_connections 1024; }
http { access_log off; default_type application/vnd.oci.image.manifest.v1+json;
  server { listen 127.0.0.1:$N; root $WORK/static; } }
NGX

# Push the same small image (config, one layer, manifest) to both registries.
python3 - "$B" "$D" "$WORK/static/v2/bench/app/manifests/latest" <<'PY'
import hashlib, http.client, json, sys, time
def wait(port):
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/v2/"); c.getresponse().read(); return
        except OSError: time.sleep(0.05)
    raise SystemExit(f"registry on {port} did not start")
def push(port, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/v2/bench/app/blobs/uploads/"); r = c.getresponse(); r.read()
    loc = r.getheader("Location"); loc = loc[loc.index("/v2/"):]
    sep = "&" if "?" in loc else "?"
    c.request("PUT", f"{loc}{sep}digest={d}", body=data, headers={"Content-Length": str(len(data))})
    r = c.getresponse(); r.read(); assert r.status == 201, r.status
    return d
config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
layer = b"layer" * 1000
out = None
for port in map(int, sys.argv[1:3]):
    wait(port)
    cd, ld = push(port, config), push(port, layer)
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": len(layer)}]}, indent=3).encode()
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("PUT", "/v2/bench/app/manifests/latest", body=m, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    r = c.getresponse(); r.read(); assert r.status == 201, r.status
    out = m
open(sys.argv[3], "wb").write(out)
# The config blob too, for the small-request runs: nginx serves it at the blob's own path.
import os
blobs = os.path.join(os.path.dirname(os.path.dirname(sys.argv[3])), "blobs")
os.makedirs(blobs, exist_ok=True)
open(os.path.join(blobs, cd), "wb").write(config)
open(os.path.join(os.path.dirname(blobs), "config.digest"), "w").write(cd)
PY
nginx -c "$WORK/nginx.conf" -p "$WORK" & sleep 0.5
PIDS+=($(cat "$WORK/nginx.pid"))
for u in "http://127.0.0.1:$B" "http://127.0.0.1:$D" "http://127.0.0.1:$N"; do
  curl -sf -o /dev/null -H "Accept: application/vnd.oci.image.manifest.v1+json" "$u/v2/bench/app/manifests/latest" || { echo "$u does not serve the manifest" >&2; exit 1; }
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# RssAnon: the process's own memory (heap, stacks), without the pages of its executable and
# libraries that are mapped from the page cache (RssFile).
anon() { awk '/RssAnon/ {print $2}' "/proc/$1/status"; }
# Right after the pushes and GETs above, then after 7 s without a request: berth lets go of
# the code pages a burst mapped once it has been idle for 5 s (src/cli/serve/pages.rs).
B_BUSY=$(rss $BPID); D_BUSY=$(rss $DPID)
sleep 7
B_IDLE=$(rss $BPID); D_IDLE=$(rss $DPID); B_IDLE_ANON=$(anon $BPID); D_IDLE_ANON=$(anon $DPID)
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
rps() {
  wrk -t2 -c32 -d"$DURATION" -H "$ACCEPT" "$1" > "$WORK/wrk.out"
  if grep -q "Non-2xx" "$WORK/wrk.out"; then echo "errors from $1:" >&2; cat "$WORK/wrk.out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out"
}
# HEAD with ab -k -i (wrk hangs on HEAD).
SECS=${DURATION%s}
heads() {
  ab -k -i -q -c 32 -t "$SECS" -n 100000000 "$1" > "$WORK/ab.out" 2>&1 || true
  if ! grep -q "^Failed requests: *0" "$WORK/ab.out" || grep -q "Non-2xx" "$WORK/ab.out"; then
    echo "errors from HEAD $1:" >&2; cat "$WORK/ab.out" >&2; exit 1
  fi
  awk '/Requests per second/ {print $4}' "$WORK/ab.out"
}
# Each figure is the median of ROUNDS runs in which berth and nginx take turns (berth first in
# odd rounds, nginx first in even ones): blocks of one against blocks of the other measured the
# machine's load as much as the servers. Prints "BERTH NGINX". berth's RSS is read after each
# of its runs (into $WORK/load.rss): it lets go of pages once idle, as it is during nginx's turn.
turns() {
  local tool=$1 b=$2 n=$3 i; local -a rb=() rn=()
  for ((i = 0; i < ${ROUNDS:-3}; i++)); do
    if ((i % 2 == 0)); then rb+=("$($tool "$b")"); rss $BPID >> "$WORK/load.rss"; rn+=("$($tool "$n")")
    else rn+=("$($tool "$n")"); rb+=("$($tool "$b")"); rss $BPID >> "$WORK/load.rss"; fi
  done
  python3 -c 'import statistics, sys; h = len(sys.argv) // 2; print(statistics.median(map(float, sys.argv[1:h+1])), statistics.median(map(float, sys.argv[h+1:])))' "${rb[@]}" "${rn[@]}"
}
MPATH=/v2/bench/app/manifests/latest
read -r R_B R_N < <(turns rps "http://127.0.0.1:$B$MPATH" "http://127.0.0.1:$N$MPATH")
B_LOAD=$(sort -n "$WORK/load.rss" | tail -1)
R_D=$(rps "http://127.0.0.1:$D$MPATH")
D_LOAD=$(rss $DPID)
python3 - "$R_B" "$R_D" "$R_N" "$B_IDLE" "$D_IDLE" "$B_LOAD" "$D_LOAD" "$B_IDLE_ANON" "$D_IDLE_ANON" "$B_BUSY" "$D_BUSY" <<'PY'
import sys
rb, rd, rn = map(float, sys.argv[1:4]); bi, di, bl, dl, ba, da, bb, db = map(int, sys.argv[4:12])
print(f"manifest GET req/s: berth {rb:,.0f}  distribution {rd:,.0f}  nginx {rn:,.0f}")
print(f"berth / distribution = {rb/rd:.1f}x (target >= 10x)")
print(f"RSS right after the pushes and GETs: berth {bb/1024:.1f} MiB, distribution {db/1024:.1f} MiB = {bb/db:.2f}x")
print(f"RSS idle (7 s without a request): berth {bi/1024:.1f} MiB, distribution {di/1024:.1f} MiB = {bi/di:.2f}x (target <= 0.5x)")
print(f"of it anonymous (RssAnon), idle: berth {ba/1024:.1f} MiB, distribution {da/1024:.1f} MiB = {ba/da:.2f}x")
print(f"RSS after load (berth: the highest after its runs): berth {bl/1024:.1f} MiB, distribution {dl/1024:.1f} MiB = {bl/dl:.2f}x (target <= 0.5x)")
PY

# ---- small requests: HEAD of a blob and GET of a small blob (the image config, ~80 bytes),
# against nginx serving the same bytes ----
CD=$(cat "$WORK/static/v2/bench/app/config.digest")
read -r H_B H_N < <(turns heads "http://127.0.0.1:$B/v2/bench/app/blobs/$CD" "http://127.0.0.1:$N/v2/bench/app/blobs/$CD")
read -r G_B G_N < <(turns rps "http://127.0.0.1:$B/v2/bench/app/blobs/$CD" "http://127.0.0.1:$N/v2/bench/app/blobs/$CD")
python3 - "$H_B" "$H_N" "$G_B" "$G_N" "$R_B" "$R_N" <<'PY'
import sys
hb, hn, gb, gn, mb, mn = map(float, sys.argv[1:7])
print(f"blob HEAD req/s: berth {hb:,.0f}  nginx {hn:,.0f}  = {hb/hn:.2f}x (target >= 0.5x)")
print(f"small blob GET req/s: berth {gb:,.0f}  nginx {gn:,.0f}  = {gb/gn:.2f}x (target >= 0.5x)")
print(f"manifest GET: berth / nginx = {mb/mn:.2f}x (target >= 0.8x)")
PY

# ---- 256 MiB blob GET, single stream, against nginx ----
BLOB_MIB=${BLOB_MIB:-256}
head -c "$((BLOB_MIB << 20))" /dev/urandom > "$WORK/big"
BIG=sha256:$(sha256sum "$WORK/big" | cut -d' ' -f1)
curl -sf -X POST --data-binary @"$WORK/big" -H 'Content-Type: application/octet-stream' \
  "http://127.0.0.1:$B/v2/bench/app/blobs/uploads/?digest=$BIG" -o /dev/null
cp "$WORK/big" "$WORK/static/big"
# The two take turns (berth, nginx, nginx, berth, …): on a machine with other work a block of
# runs of one against a block of the other measured the load as much as the servers.
python3 - "$WORK/blob.json" "${RUNS:-9}" "http://127.0.0.1:$B/v2/bench/app/blobs/$BIG" "http://127.0.0.1:$N/big" <<'PY'
import json, statistics, subprocess, sys, time
out, runs, berth, nginx = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def once(u):
    t = time.perf_counter(); subprocess.run(["curl", "-sf", "-o", "/dev/null", u], check=True)
    return time.perf_counter() - t
for _ in range(2): once(berth); once(nginx)
times = {"berth blob GET": [], "nginx file GET": []}
for i in range(runs):
    order = [("berth blob GET", berth), ("nginx file GET", nginx)]
    for name, u in (order if i % 2 == 0 else order[::-1]):
        times[name].append(once(u))
json.dump({"results": [{"command": k, "median": statistics.median(v)} for k, v in times.items()]}, open(out, "w"))
PY

# ---- skopeo push of a 3x64 MiB image, berth against distribution ----
python3 - "$WORK/oci" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]; blobs = os.path.join(root, "blobs", "sha256"); os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest(); open(os.path.join(blobs, d), "wb").write(data); return "sha256:" + d, len(data)
layers = [put(os.urandom(64 << 20)) for _ in range(3)]
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]}}).encode()
cd, cs = put(cfg)
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n} for d, n in layers]}).encode()
md, ms = put(m)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
    "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}, open(os.path.join(root, "index.json"), "w"))
open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion": "1.0.0"}')
PY
# Each run starts its registry on an empty root (skopeo would skip blobs a registry already has);
# the start-up is inside the timed command for both, and is a few milliseconds for each. The
# address file goes too: the last run's `listening on` line, read before the new server had
# truncated the file, once gave skopeo an empty address (a push that failed the whole bench).
# A failed push stops its server too (it was left running).
hyperfine -N --runs "${PUSH_RUNS:-3}" --export-json "$WORK/push.json" \
  --prepare "rm -rf $WORK/pb $WORK/pd $WORK/pb.addr; sync" \
  -n "berth skopeo push" "bash -c 'set -e; $BERTH serve --listen 127.0.0.1:0 --root $WORK/pb > $WORK/pb.addr 2>/dev/null & p=\$!; for k in \$(seq 100); do grep -q listening $WORK/pb.addr 2>/dev/null && break; sleep 0.05; done; a=\$(sed -n \"s/listening on //p\" $WORK/pb.addr); skopeo copy -q --dest-tls-verify=false oci:$WORK/oci:latest docker://\$a/push/x:latest || { kill \$p; exit 1; }; kill \$p'" \
  -n "distribution skopeo push" "bash -c 'set -e; q=\$(python3 -c \"import socket;s=socket.socket();s.bind((\\\"127.0.0.1\\\",0));print(s.getsockname()[1])\"); printf \"version: 0.1\\nlog: {level: error}\\nstorage: {filesystem: {rootdirectory: $WORK/pd}}\\nhttp: {addr: 127.0.0.1:\$q}\\n\" > $WORK/pd.yml; /usr/bin/docker-registry serve $WORK/pd.yml >/dev/null 2>&1 & p=\$!; for k in \$(seq 100); do curl -sf http://127.0.0.1:\$q/v2/ >/dev/null && break; sleep 0.05; done; skopeo copy -q --dest-tls-verify=false oci:$WORK/oci:latest docker://127.0.0.1:\$q/push/x:latest || { kill \$p; exit 1; }; kill \$p'" >/dev/null

python3 - "$WORK/blob.json" "$WORK/push.json" "$BLOB_MIB" <<'PY'
import json, sys
def med(p): return {r["command"]: r["median"] for r in json.load(open(p))["results"]}
b, p, mib = med(sys.argv[1]), med(sys.argv[2]), int(sys.argv[3])
for k, v in b.items(): print(f"{k:26s} {v*1000:8.1f} ms  {mib/1024/v:5.2f} GiB/s")
print(f"blob GET: berth speed / nginx speed = {b['nginx file GET']/b['berth blob GET']:.2f}x (target >= 1.0x)")
for k, v in p.items(): print(f"{k:26s} {v*1000:8.1f} ms")
print(f"skopeo push: berth / distribution time = {p['berth skopeo push']/p['distribution skopeo push']:.2f}x (target <= 0.7x)")
PY
