#!/usr/bin/env bash
# bench/client.sh: berth pull / push / images beside podman, docker and skopeo, on one local
# CNCF distribution, same image, same run. Prints medians and ratios (berth / peer).
#
#   ./bench/client.sh            # LAYERS=3 LAYER_MIB=64 RUNS=3 by default
#   BERTH=path/to/release/berth ./bench/client.sh    # use that binary, skip the build
#
# The image has LAYERS layers of LAYER_MIB MiB of random bytes each (gzip -1). Pulls start from
# an empty store every run; pushes go to a freshly started registry every run. `berth images`
# is timed over an index of 500 images.
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${LAYERS:-3}
LAYER_MIB=${LAYER_MIB:-64}
RUNS=${RUNS:-3}
if [ -n "${BERTH:-}" ]; then
  B=$BERTH
else
  cargo build --release -q
  B=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
fi
W=$(mktemp -d /tmp/bench-client.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

start_registry() { # DIR PORT -> pid in REG_PID
  mkdir -p "$1"
  cat >"$1/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $1/data}}
http: {addr: 127.0.0.1:$2}
EOF
  docker-registry serve "$1/config.yml" >/dev/null 2>&1 &
  REG_PID=$!
  wait_port "$2"
}

# The image: an OCI layout with LAYERS random layers.
python3 bench/oci_image.py "$W/layout" "$LAYERS" "$LAYER_MIB"

PORT=$(free_port)
start_registry "$W/reg" "$PORT"; PIDS+=("$REG_PID")
IMG=127.0.0.1:$PORT/bench/img:1
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:latest" "docker://$IMG"

# A private dockerd (overlay2 where the kernel allows it).
DD=$(mktemp -d /tmp/bdXXXX)
dockerd --data-root "$DD/data" --exec-root "$DD/exec" --pidfile "$DD/pid" -H "unix://$DD/s" \
  --bridge=none --iptables=false --ip-masq=false >"$DD/log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 300); do docker -H "unix://$DD/s" version >/dev/null 2>&1 && break; sleep 0.2; done
D="docker -H unix://$DD/s"

# median_ms PREPARE COMMAND: runs PREPARE then times COMMAND, RUNS times; prints the median.
median_ms() {
  local times=()
  for _ in $(seq "$RUNS"); do
    bash -c "$1" >/dev/null 2>&1
    sync
    local s e
    s=$(date +%s%N)
    bash -c "$2" >/dev/null
    e=$(date +%s%N)
    times+=($(((e - s) / 1000000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

P="podman --root $W/podman --runroot $W/podman-run"
echo "image: $LAYERS x $LAYER_MIB MiB random layers (gzip -1); median of $RUNS runs"
berth_pull=$(median_ms "rm -rf $W/broot" "BERTH_ROOT=$W/broot $B pull -q $IMG")
podman_pull=$(median_ms "$P rmi -af; rm -rf $W/podman" "$P pull -q --tls-verify=false $IMG")
docker_pull=$(median_ms "$D rmi -f $IMG" "$D pull -q $IMG")
skopeo_dir=$(median_ms "rm -rf $W/sk" "skopeo copy -q --src-tls-verify=false docker://$IMG dir:$W/sk")
echo "pull:  berth ${berth_pull} ms | podman ${podman_pull} ms ($(ratio "$berth_pull" "$podman_pull")x) | docker ${docker_pull} ms ($(ratio "$berth_pull" "$docker_pull")x) | skopeo dir: ${skopeo_dir} ms ($(ratio "$berth_pull" "$skopeo_dir")x)"

# Pushes: each run to a registry started afresh.
P2=$(free_port)
push_prep() { echo "kill \$(cat $W/reg2.pid 2>/dev/null) 2>/dev/null; sleep 0.3; rm -rf $W/reg2; mkdir -p $W/reg2; printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: $W/reg2/data}}\nhttp: {addr: 127.0.0.1:$P2}\n' > $W/reg2/c.yml; (setsid docker-registry serve $W/reg2/c.yml >/dev/null 2>&1 & echo \$! > $W/reg2.pid); for i in \$(seq 100); do (echo > /dev/tcp/127.0.0.1/$P2) 2>/dev/null && break; sleep 0.1; done"; }
BERTH_ROOT=$W/broot $B tag "$IMG" "127.0.0.1:$P2/bench/pushed:1"
berth_push=$(median_ms "$(push_prep)" "BERTH_ROOT=$W/broot $B push -q 127.0.0.1:$P2/bench/pushed:1")
skopeo_push=$(median_ms "$(push_prep)" "skopeo copy -q --dest-tls-verify=false oci:$W/layout:latest docker://127.0.0.1:$P2/bench/pushed:1")
kill "$(cat "$W/reg2.pid")" 2>/dev/null || true
echo "push:  berth ${berth_push} ms | skopeo ${skopeo_push} ms ($(ratio "$berth_push" "$skopeo_push")x)"

# images over 500 images: the pulled image's record copied under 500 ids and names, each
# name also a tag in the store (every command compares the store's tags with the index).
python3 - "$W/broot/images/index.json" "$W/b500" <<'EOF'
import json, hashlib, os, sys
src = json.load(open(sys.argv[1]))
root = sys.argv[2]
rec = next(iter(src["images"].values()))
out = {}
os.makedirs(f"{root}/catalog", exist_ok=True)
for i in range(500):
    r = dict(rec); r["id"] = "sha256:" + hashlib.sha256(f"{i}".encode()).hexdigest()
    r["tags"] = [f"docker.io/library/img{i}:latest"]
    out[r["id"]] = r
    tags = f"{root}/repositories/docker.io/library/img{i}/_tags"
    os.makedirs(tags, exist_ok=True)
    open(f"{tags}/latest", "w").write(rec["manifest"])
    open(f"{root}/catalog/docker.io~library~img{i}", "w").close()
os.makedirs(f"{root}/images", exist_ok=True)
json.dump({"version": 1, "images": out}, open(f"{root}/images/index.json", "w"))
EOF
[ "$(BERTH_ROOT=$W/b500 $B images -q | wc -l)" = 500 ] || { echo "berth images does not list the 500 images" >&2; exit 1; }
# A directory changed in the last 2 s is compared again by every command (file times tick
# coarsely): time the store as it is once it has settled.
sleep 3
BERTH_ROOT=$W/b500 hyperfine -N -w 3 -r 30 "$B images" 2>/dev/null | grep -E "Time|Range" || true
