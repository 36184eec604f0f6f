#!/usr/bin/env bash
# Load, side by side in one run: 500 concurrent connections of manifest and blob GETs (wrk,
# 60 s) while 20 pushers push images of their own over and over, against `berth serve` and
# then against CNCF distribution (Debian's docker-registry), each on the filesystem. Prints
# requests/s, p50/p99 latency, errors (any non-2xx or socket error, and any failed push),
# pushes done, and peak RSS sampled every 0.25 s; then the ratios berth / distribution.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-500}
PUSHERS=${PUSHERS:-20}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || cargo build --release -q --bin berth
for t in wrk python3 /usr/bin/docker-registry; do command -v "$t" >/dev/null || { echo "needs $t" >&2; exit 1; }; done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-load.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The requests wrk makes: the manifest by tag, the config, a 64 KiB and a 1 MiB layer, at random.
cat > "$WORK/mix.lua" <<'LUA'
local paths = {}
function init(args) for i, p in ipairs(args) do paths[i] = p end end
function request()
  return wrk.format("GET", paths[math.random(#paths)],
    { ["Accept"] = "application/vnd.oci.image.manifest.v1+json" })
end
LUA

# Seeds one image, prints the paths to read; with `push N SECONDS`, pushes images of its own
# (a config, a 256 KiB layer, a manifest) in N threads until the time is up, and prints
# "pushes errors".
cat > "$WORK/client.py" <<'PY'
import hashlib, http.client, json, os, sys, threading, time
port = int(sys.argv[1])
def wait():
    for _ in range(400):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/v2/"); c.getresponse().read(); return
        except OSError: time.sleep(0.05)
    raise SystemExit(f"registry on {port} did not start")
def blob(c, repo, data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    c.request("POST", f"/v2/{repo}/blobs/uploads/"); r = c.getresponse(); r.read()
    if r.status != 202: raise RuntimeError(f"POST {r.status}")
    loc = r.getheader("Location"); loc = loc[loc.index("/v2/"):]
    sep = "&" if "?" in loc else "?"
    c.request("PUT", f"{loc}{sep}digest={d}", body=data, headers={"Content-Length": str(len(data))})
    r = c.getresponse(); r.read()
    if r.status != 201: raise RuntimeError(f"PUT blob {r.status}")
    return d
def image(c, repo, tag, layers):
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": f"{repo}:{tag}",
        "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    cd = blob(c, repo, cfg)
    ls = [(blob(c, repo, l), len(l)) for l in layers]
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n} for d, n in ls]}).encode()
    c.request("PUT", f"/v2/{repo}/manifests/{tag}", body=m, headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    r = c.getresponse(); r.read()
    if r.status != 201: raise RuntimeError(f"PUT manifest {r.status}")
    return cd, [d for d, _ in ls]
wait()
if sys.argv[2] == "seed":
    c = http.client.HTTPConnection("127.0.0.1", port)
    cd, ls = image(c, "load/app", "latest", [os.urandom(64 << 10), os.urandom(1 << 20)])
    for p in ["/v2/load/app/manifests/latest", f"/v2/load/app/blobs/{cd}"] + [f"/v2/load/app/blobs/{d}" for d in ls]:
        print(p)
elif sys.argv[2] == "slow":
    # 200 keep-alive connections that ask once and then idle, and one reader that takes a
    # 1 MiB blob at 1 KiB/s, for the whole run; prints how many idle connections the server
    # still held at the end and how many bytes the slow reader got.
    import socket
    blob, secs = sys.argv[3], float(sys.argv[4])
    idle = []
    for _ in range(200):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10); c.request("GET", "/v2/"); c.getresponse().read(); idle.append(c)
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(f"GET {blob} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got, end = 0, time.time() + secs
    while time.time() < end:
        d = s.recv(1024)
        if not d: break
        got += len(d); time.sleep(1)
    alive = 0
    for c in idle:
        try:
            c.request("GET", "/v2/"); r = c.getresponse(); r.read(); alive += r.status == 200
        except OSError: pass
    print(alive, got)
else:
    n, secs = int(sys.argv[3]), float(sys.argv[4])
    end = time.time() + secs; done = [0] * n; errors = [0] * n
    def pusher(i):
        k = 0
        while time.time() < end:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                image(c, f"load/push{i}", str(k), [os.urandom(256 << 10)]); done[i] += 1
            except Exception as e:
                errors[i] += 1; print(f"push {i}.{k}: {e}", file=sys.stderr)
            k += 1
    ts = [threading.Thread(target=pusher, args=(i,)) for i in range(n)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(sum(done), sum(errors))
PY

# run NAME PID PORT: the load against one registry; writes $WORK/NAME.result.
run() {
  local name=$1 pid=$2 p=$3
  mapfile -t paths < <(python3 "$WORK/client.py" "$p" seed)
  local peak=0
  ( while kill -0 "$pid" 2>/dev/null; do awk '/VmRSS/ {print $2}' "/proc/$pid/status"; sleep 0.25; done ) > "$WORK/$name.rss" &
  local sampler=$!
  python3 "$WORK/client.py" "$p" push "$PUSHERS" "${DURATION%s}" > "$WORK/$name.push" 2> "$WORK/$name.push.err" &
  local pushers=$!
  python3 "$WORK/client.py" "$p" slow "${paths[3]}" "${DURATION%s}" > "$WORK/$name.slow" 2> "$WORK/$name.slow.err" &
  local slow=$!
  wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --timeout 10s --latency -s "$WORK/mix.lua" "http://127.0.0.1:$p" -- "${paths[@]}" > "$WORK/$name.wrk"
  wait "$pushers"
  wait "$slow" || { echo "$name: the slow clients failed" >&2; cat "$WORK/$name.slow.err" >&2; }
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  peak=$(sort -n "$WORK/$name.rss" | tail -1)
  python3 - "$name" "$WORK/$name.wrk" "$WORK/$name.push" "$peak" > "$WORK/$name.result" <<'PY'
import re, sys
name, wrk, push, peak = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read().split(), int(sys.argv[4])
def lat(label):
    m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", wrk, re.M)
    v = float(m.group(1)); return v / 1000 if m.group(2) == "us" else v * 1000 if m.group(2) == "s" else v
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)) else 0
sock = sum(map(int, re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", wrk).groups())) if "Socket errors" in wrk else 0
print(name, rps, lat("50%"), lat("99%"), non2xx + sock, push[0], push[1], peak)
PY
  read -r _ rps p50 p99 errs pushes perr peak < "$WORK/$name.result"
  printf '%-13s %9.0f req/s  p50 %7.2f ms  p99 %8.2f ms  GET errors %s  pushes %s (failed %s)  peak RSS %.1f MiB\n' \
    "$name" "$rps" "$p50" "$p99" "$errs" "$pushes" "$perr" "$(echo "$peak / 1024" | bc -l)"
  read -r alive slowgot < "$WORK/$name.slow" || { alive=0; slowgot=0; }
  printf '%-13s slow clients: %s of 200 idle keep-alive connections still served at the end; the 1 KiB/s reader got %s bytes\n' \
    "" "$alive" "$slowgot"
  if [ "$errs" != 0 ] || [ "$perr" != 0 ]; then
    echo "$name: errors under load" >&2; sed -n 1,20p "$WORK/$name.push.err" >&2; cat "$WORK/$name.wrk" >&2
  fi
}

B=$(port)
"$BERTH" serve --listen "127.0.0.1:$B" --root "$WORK/berth" >/dev/null 2>"$WORK/berth.log" & PIDS+=($!); BPID=$!
run berth "$BPID" "$B"
kill "$BPID"

D=$(port)
cat > "$WORK/dist.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/dist } }
http: { addr: 127.0.0.1:$D }
YML
/usr/bin/docker-registry serve "$WORK/dist.yml" >/dev/null 2>"$WORK/dist.log" & PIDS+=($!); DPID=$!
run distribution "$DPID" "$D"

python3 - "$WORK/berth.result" "$WORK/distribution.result" <<'PY'
import sys
b, d = (open(p).read().split() for p in sys.argv[1:3])
rb, rd = float(b[1]), float(d[1])
print(f"berth / distribution: req/s {rb/rd:.2f}x, p50 {float(b[2])/float(d[2]):.2f}x, p99 {float(b[3])/float(d[3]):.2f}x, "
      f"pushes {int(b[5])/max(1,int(d[5])):.2f}x, peak RSS {int(b[7])/int(d[7]):.2f}x")
print(f"berth: errors {int(b[4]) + int(b[6])} (target 0), peak RSS {int(b[7])/1024:.1f} MiB (target < 300 MiB)")
PY
