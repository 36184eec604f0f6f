#!/usr/bin/env bash
# The web page's repository list at 10,000 repositories: server time of its first page
# (Server-Timing) and the time a client waits for it, sorted by name, by last push and
# filtered by a search, beside CNCF distribution's nearest answer over the same 10,000
# repositories (distribution has no page: its first `_catalog` page of 50 names), and beside
# berth's own `_catalog` page. Medians of RUNS requests on one kept-alive connection each.
set -euo pipefail
cd "$(dirname "$0")/.."
REPOS=${REPOS:-10000}
RUNS=${RUNS:-25}
BERTH=${BERTH:-${CARGO_TARGET_DIR:-target}/release/berth}
[ -x "$BERTH" ] || cargo build --release -q --bin berth
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/berth-webbench.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

B=$(port); D=$(port)
"$BERTH" serve --listen "127.0.0.1:$B" --root "$WORK/berth" >/dev/null 2>"$WORK/berth.log" & PIDS+=($!)
cat > "$WORK/dist.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/dist } }
http: { addr: 127.0.0.1:$D }
YML
/usr/bin/docker-registry serve "$WORK/dist.yml" >/dev/null 2>&1 & PIDS+=($!)

python3 - "$B" "$D" "$REPOS" "$RUNS" <<'PY'
import hashlib, http.client, json, statistics, sys, time
from concurrent.futures import ThreadPoolExecutor
B, D, REPOS, RUNS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def wait(port):
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/v2/"); c.getresponse().read(); return
        except OSError: time.sleep(0.05)
    raise SystemExit(f"registry on {port} did not start")

config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
layer = b"layer" * 1000
def digest(b): return "sha256:" + hashlib.sha256(b).hexdigest()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(layer), "size": len(layer)}]}).encode()

def push_range(port, names):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for name in names:
        for blob in (config, layer):
            c.request("POST", f"/v2/{name}/blobs/uploads/"); r = c.getresponse(); r.read()
            loc = r.getheader("Location"); loc = loc[loc.index("/v2/"):]
            sep = "&" if "?" in loc else "?"
            c.request("PUT", f"{loc}{sep}digest={digest(blob)}", body=blob, headers={"Content-Length": str(len(blob))})
            r = c.getresponse(); r.read(); assert r.status == 201, (name, r.status)
        c.request("PUT", f"/v2/{name}/manifests/latest", body=manifest,
                  headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        r = c.getresponse(); r.read(); assert r.status == 201, (name, r.status)

names = [f"team-{i % 100:02d}/app-{i:05d}" for i in range(REPOS)]
for port, who in ((B, "berth"), (D, "distribution")):
    wait(port)
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda part: push_range(port, part), [names[i::8] for i in range(8)]))
    print(f"pushed {REPOS} repositories to {who} in {time.perf_counter() - t:.1f} s", file=sys.stderr)

def measure(port, path, accept):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    walls, servers = [], []
    for i in range(RUNS + 1):
        t = time.perf_counter()
        c.request("GET", path, headers={"Accept": accept}); r = c.getresponse(); body = r.read()
        wall = (time.perf_counter() - t) * 1000
        assert r.status == 200, (path, r.status)
        if i == 0:
            continue  # the first request also warms the page cache
        walls.append(wall)
        timing = r.getheader("Server-Timing")
        if timing:
            servers.append(float(timing.split("dur=")[1]))
    return statistics.median(walls), (statistics.median(servers) if servers else None), len(body)

html = "text/html,application/xhtml+xml"
rows = [
    ("berth page, by name", measure(B, "/ui/", html)),
    ("berth page, by last push", measure(B, "/ui/?sort=pushed", html)),
    ("berth page, search 'app-0999'", measure(B, "/ui/?q=app-0999", html)),
    ("berth page, page 100", measure(B, "/ui/?page=100", html)),
    ("berth _catalog?n=50", measure(B, "/v2/_catalog?n=50", "application/json")),
    ("distribution _catalog?n=50", measure(D, "/v2/_catalog?n=50", "application/json")),
]
print(f"{REPOS} repositories, medians of {RUNS} requests")
print(f"{'':32} {'client ms':>10} {'server ms':>10} {'bytes':>8}")
for label, (wall, server, size) in rows:
    s = f"{server:10.1f}" if server is not None else f"{'':>10}"
    print(f"{label:32} {wall:10.1f} {s} {size:8}")
peer = rows[5][1][0]
print(f"ratio berth page (by name) / distribution _catalog: {rows[0][1][0] / peer:.2f}")
print(f"ratio berth page (by last push) / distribution _catalog: {rows[1][1][0] / peer:.2f}")
worst = max(r[1][1] for r in rows[:4])
print(f"slowest berth page, server time: {worst:.1f} ms (target: under 200 ms)")
PY
