#!/usr/bin/env bash
# Garbage collection of one data set in both stores' layouts, side by side in one run:
# `berth gc` (the collector `berth serve` runs online, beside pushes) and CNCF distribution's
# `registry garbage-collect` (offline: its registry must be stopped). The data: MANIFESTS
# manifests in 100 repositories, each tagged and needing a config and three layers, and as many
# unreferenced blobs as referenced ones (100,000 blobs in all by default), every file two hours
# old. Each run collects a fresh copy on tmpfs (the disk's discard would time the deletes).
# Prints the medians of RUNS runs (wall time, peak RSS) and the ratios berth / distribution.
# Needs docker-registry (Debian) and GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
MANIFESTS=${MANIFESTS:-10000}
RUNS=${RUNS:-3}
if [ -z "${BERTH:-}" ]; then   # BERTH=PATH: a berth already built
  cargo build --release -q --bin berth
  BERTH=${CARGO_TARGET_DIR:-target}/release/berth
fi
DIST=${DIST:-/usr/bin/docker-registry}
[ -x "$DIST" ] || { echo "gc.sh: $DIST missing (apt-get install docker-registry)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "gc.sh: GNU time missing (apt-get install time)" >&2; exit 1; }
WORK=$(mktemp -d /dev/shm/berth-gc-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 - "$WORK" "$MANIFESTS" <<'PY'
import hashlib, json, os, sys, time
work, manifests = sys.argv[1], int(sys.argv[2])
berth, dist = f"{work}/pristine/berth", f"{work}/pristine/dist/docker/registry/v2"
old = time.time() - 7200
def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (old, old))
def blob(data):
    hex = hashlib.sha256(data).hexdigest()
    write(f"{berth}/blobs/sha256/{hex}", data)
    write(f"{dist}/blobs/sha256/{hex[:2]}/{hex}/data", data)
    return hex
n = 0
def content():
    global n
    n += 1
    return n.to_bytes(8, "big") + os.urandom(248)
for m in range(manifests):
    repo = f"team/app{m % 100}"
    tag = f"v{m // 100}"
    refs = [blob(content()) for _ in range(4)]
    desc = lambda mt, h: {"mediaType": mt, "digest": f"sha256:{h}", "size": 256}
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", refs[0]),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", h) for h in refs[1:]],
    }).encode()
    mh = blob(body)
    # berth: tag, manifest link (its media type), blob links, the catalog entry.
    write(f"{berth}/repositories/{repo}/_tags/{tag}", f"sha256:{mh}".encode())
    write(f"{berth}/repositories/{repo}/_manifests/sha256/{mh}",
          b"application/vnd.oci.image.manifest.v1+json")
    for h in refs:
        write(f"{berth}/repositories/{repo}/_blobs/sha256/{h}", b"")
    write(f"{berth}/catalog/{repo.replace('/', '~')}", b"")
    # distribution: revision link, tag's current and index links, layer links.
    r = f"{dist}/repositories/{repo}"
    link = f"sha256:{mh}".encode()
    write(f"{r}/_manifests/revisions/sha256/{mh}/link", link)
    write(f"{r}/_manifests/tags/{tag}/current/link", link)
    write(f"{r}/_manifests/tags/{tag}/index/sha256/{mh}/link", link)
    for h in refs:
        write(f"{r}/_layers/sha256/{h}/link", f"sha256:{h}".encode())
# As many unreferenced blobs as referenced ones (manifests included).
for _ in range(manifests * 5):
    blob(content())
PY

cat >"$WORK/berth.toml" <<EOF
[storage]
backend = "filesystem"
root = "$WORK/run/berth"
EOF
cat >"$WORK/dist.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/run/dist
EOF
count() { find "$1" -type f | wc -l; }
echo "data: $MANIFESTS manifests, $(count "$WORK/pristine/berth/blobs") blobs" \
  "($((MANIFESTS * 5)) unreferenced)"

# One measured run: copy the pristine store, drop nothing from the page cache (both read
# from tmpfs), time the collection, check what is left.
measure() { # NAME STORE-DIR BLOB-DIR COMMAND...
  local name=$1 store=$2 blobs=$3
  shift 3
  rm -rf "$WORK/run"
  mkdir -p "$WORK/run"
  cp -a "$WORK/pristine/$store" "$WORK/run/$store"
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" \
    || { echo "$name failed:"; tail -5 "$WORK/err"; exit 1; } >&2
  local left
  left=$(count "$WORK/run/$blobs")
  [ "$left" -eq "$((MANIFESTS * 5))" ] \
    || { echo "$name left $left blobs, not $((MANIFESTS * 5))" >&2; exit 1; }
  echo "$name $(cat "$WORK/time")" >>"$WORK/results"
}
: >"$WORK/results"
for _ in $(seq "$RUNS"); do
  measure berth berth berth/blobs "$BERTH" gc --config "$WORK/berth.toml"
  measure distribution dist dist/docker/registry/v2/blobs \
    "$DIST" garbage-collect "$WORK/dist.yml"
done
python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = {}
for name in ("berth", "distribution"):
    t = statistics.median(float(r[1]) for r in rows if r[0] == name)
    m = statistics.median(int(r[2]) for r in rows if r[0] == name)
    med[name] = (t, m)
    print(f"{name:13s} median {t:7.2f} s  peak RSS {m / 1024:7.1f} MiB")
(bt, bm), (dt, dm) = med["berth"], med["distribution"]
print(f"berth / distribution: time {bt / dt:.2f}x, peak memory {bm / dm:.2f}x (target <= 0.5x each)")
PY
