#!/usr/bin/env bash
# Registry speed, side by side in one run: manifest GET by tag at 32 connections (wrk) against
# berth, CNCF distribution (Debian's docker-registry) and nginx serving the same bytes as a
# static file; resident memory of berth and distribution idle and after the load.
# Not yet here (issue 3): the 256 MiB blob GET against nginx and the skopeo push of 3×64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || cargo build --release -q --bin berth
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-regbench.XXXXXX")
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
PY
nginx -c "$WORK/nginx.conf" -p "$WORK" & sleep 0.5
PIDS+=($(cat "$WORK/nginx.pid"))
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
B_IDLE=$(rss $BPID); D_IDLE=$(rss $DPID)
ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
rps() { wrk -t2 -c32 -d"$DURATION" -H "$ACCEPT" "$1" | awk '/Requests\/sec/ {print $2}'; }
R_B=$(rps "http://127.0.0.1:$B/v2/bench/app/manifests/latest")
B_LOAD=$(rss $BPID)
R_D=$(rps "http://127.0.0.1:$D/v2/bench/app/manifests/latest")
D_LOAD=$(rss $DPID)
R_N=$(rps "http://127.0.0.1:$N/v2/bench/app/manifests/latest")
python3 - "$R_B" "$R_D" "$R_N" "$B_IDLE" "$D_IDLE" "$B_LOAD" "$D_LOAD" <<'PY'
import sys
rb, rd, rn = map(float, sys.argv[1:4]); bi, di, bl, dl = map(int, sys.argv[4:8])
print(f"manifest GET req/s: berth {rb:,.0f}  distribution {rd:,.0f}  nginx {rn:,.0f}")
print(f"berth / distribution = {rb/rd:.1f}x (target >= 10x); berth / nginx = {rb/rn:.2f}x (target >= 0.3x)")
print(f"RSS idle: berth {bi/1024:.1f} MiB, distribution {di/1024:.1f} MiB = {bi/di:.2f}x (target <= 0.5x)")
print(f"RSS after load: berth {bl/1024:.1f} MiB, distribution {dl/1024:.1f} MiB = {bl/dl:.2f}x (target <= 0.5x)")
PY
