#!/usr/bin/env bash
# bench/mirror.sh: berth's mirror beside CNCF distribution in proxy mode, both in front of the
# same upstream (a distribution holding the image), same image, same run.
#
#   ./bench/mirror.sh            # LAYERS=3 LAYER_MIB=64 CLIENTS=20 RUNS=3 WARM_RUNS=9 by default
#   BERTH=path/to/release/berth ./bench/mirror.sh   # skips the build
#   OUT_DIR=/dev/shm (default): where the clients write their copies (CLIENTS x the image)
#   SPOOL=DIR: the berth mirror's [mirror] spool (default: its own default, the temp dir)
#
# Cold: CLIENTS concurrent `skopeo copy` (to dir:) of the image through each mirror, each run
# with an empty cache; wall time until the last client is done, and the blob bytes the
# upstream sent (its access log) against the image's size. Warm: one skopeo copy through
# berth's mirror with the image cached vs one from a berth serving the image directly.
#
# UPSTREAM_RATE (default 1gbit, a tc rate) puts the upstream in a network namespace of the
# bench's own (10.213.0.2, a veth pair shaped with tbf both ways), as a registry across a WAN
# link would be; UPSTREAM_RATE=none keeps it on 127.0.0.1, where re-reading it costs little.
set -euo pipefail
cd "$(dirname "$0")/.."
LAYERS=${LAYERS:-3}
LAYER_MIB=${LAYER_MIB:-64}
CLIENTS=${CLIENTS:-20}
RUNS=${RUNS:-3}
WARM_RUNS=${WARM_RUNS:-9}
UPSTREAM_RATE=${UPSTREAM_RATE:-1gbit}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
if [ -z "${BERTH:-}" ]; then
  cargo build --release -q
  BERTH=$TARGET/release/berth
fi
W=$(mktemp -d /tmp/bench-mirror.XXXXXX)
# The clients' copies (CLIENTS x the image) go to memory: the disk may not hold them.
O=$(mktemp -d "${OUT_DIR:-/dev/shm}/bench-mirror-out.XXXXXX")
PIDS=()
NS=berth-bench-$$
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W" "$O"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # PORT [HOST]
  for _ in $(seq 300); do (echo >/dev/tcp/"${2:-127.0.0.1}"/"$1") 2>/dev/null && return; sleep 0.1; done
  echo "port $1 never opened" >&2; exit 1
}

# The image: an OCI layout with LAYERS random layers (gzip -1).
python3 bench/oci_image.py "$W/layout" "$LAYERS" "$LAYER_MIB"
IMAGE_BYTES=$(du -cb "$W"/layout/blobs/sha256/* | tail -1 | cut -f1)

# The upstream: distribution with its access log on, behind a shaped link unless told not to.
UP=$(free_port)
UPHOST=127.0.0.1
IN_NS=()
if [ "$UPSTREAM_RATE" != none ]; then
  H=bbh$$ N=bbn$$
  ip netns add "$NS"
  ip link add "$H" type veth peer name "$N"
  ip link set "$N" netns "$NS"
  ip addr add 10.213.0.1/24 dev "$H"
  ip link set "$H" up
  ip -n "$NS" addr add 10.213.0.2/24 dev "$N"
  ip -n "$NS" link set "$N" up
  ip -n "$NS" link set lo up
  tc qdisc add dev "$H" root tbf rate "$UPSTREAM_RATE" burst 256kb latency 100ms
  tc -n "$NS" qdisc add dev "$N" root tbf rate "$UPSTREAM_RATE" burst 256kb latency 100ms
  UPHOST=10.213.0.2
  IN_NS=(ip netns exec "$NS")
fi
mkdir -p "$W/up"
printf 'version: 0.1\nlog: {level: info}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s:%s}\n' \
  "$W/up/data" "$UPHOST" "$UP" >"$W/up/config.yml"
"${IN_NS[@]}" docker-registry serve "$W/up/config.yml" >"$W/up/log" 2>&1 &
PIDS+=("$!")
wait_port "$UP" "$UPHOST"
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:latest" "docker://$UPHOST:$UP/bench/img:latest"

# Blob bytes the upstream's access log shows since line $1.
upstream_bytes() {
  tail -n +"$(($1 + 1))" "$W/up/log" | python3 -c '
import re, sys
n = 0
for l in sys.stdin:
    m = re.search(r"\"GET /v2/[^ ]*/blobs/[^ ]* HTTP/[0-9.]+\" 20[06] ([0-9]+)", l)
    if m: n += int(m.group(1))
print(n)'
}
log_lines() { wc -l <"$W/up/log"; }

# The mirrors, each started afresh on an empty cache: berth ([mirror]) and distribution (proxy).
start_berth_mirror() { # PORT
  rm -rf "$W/bm"; mkdir -p "$W/bm"
  local Q='"' # SPOOL (where blobs in flight are kept; default the temp dir) goes in quotes
  cat >"$W/bm.toml" <<EOF
[server]
listen = "127.0.0.1:$1"
[storage]
backend = "filesystem"
root = "$W/bm"
[mirror]
default = "docker.io"
${SPOOL:+spool = $Q$SPOOL$Q}
[mirror.upstream."docker.io"]
url = "http://$UPHOST:$UP"
EOF
  "$BERTH" serve --config "$W/bm.toml" >/dev/null 2>"$W/bm.log" &
  echo $! >"$W/mirror.pid"
  wait_port "$1"
}
start_dist_mirror() { # PORT
  rm -rf "$W/dm"; mkdir -p "$W/dm"
  printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\nproxy: {remoteurl: "http://%s:%s"}\n' \
    "$W/dm" "$1" "$UPHOST" "$UP" >"$W/dm.yml"
  docker-registry serve "$W/dm.yml" >/dev/null 2>&1 &
  echo $! >"$W/mirror.pid"
  wait_port "$1"
}
stop_mirror() { kill "$(cat "$W/mirror.pid")" 2>/dev/null || true; wait "$(cat "$W/mirror.pid")" 2>/dev/null || true; }

# cold START: one run of CLIENTS concurrent pulls on a fresh mirror; writes "ms bytes" to result.
cold() {
  local port; port=$(free_port)
  "$1" "$port"
  local before; before=$(log_lines)
  rm -rf "$O/out"; mkdir -p "$O/out"; sync
  local s e pids=()
  s=$(date +%s%N)
  for i in $(seq "$CLIENTS"); do
    skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$port/bench/img:latest" "dir:$O/out/$i" &
    pids+=("$!")
  done
  local failed=0
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  e=$(date +%s%N)
  # The mirror's own CPU time (user + system) for the run, in ms.
  local cpu
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$(cat "$W/mirror.pid")/stat")
  stop_mirror
  [ "$failed" = 0 ] || { echo "a pull through $1 failed" >&2; exit 1; }
  sleep 0.5 # the access log's last lines
  rm -rf "$O/out"
  echo "$(((e - s) / 1000000)) $(upstream_bytes "$before") $cpu" >"$W/result"
}
median() { sort -n | sed -n "$(((${RUNS} + 1) / 2))p"; }
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }

echo "image: $LAYERS x $LAYER_MIB MiB random layers (gzip -1), $IMAGE_BYTES bytes of blobs; $CLIENTS concurrent skopeo pulls; upstream link: $UPSTREAM_RATE; median of $RUNS runs"
B_MS=(); B_BYTES=(); B_CPU=(); D_MS=(); D_BYTES=(); D_CPU=()
for _ in $(seq "$RUNS"); do
  cold start_berth_mirror; read -r ms bytes cpu <"$W/result"; B_MS+=("$ms"); B_BYTES+=("$bytes"); B_CPU+=("$cpu")
  cold start_dist_mirror; read -r ms bytes cpu <"$W/result"; D_MS+=("$ms"); D_BYTES+=("$bytes"); D_CPU+=("$cpu")
done
bm=$(printf '%s\n' "${B_MS[@]}" | median); bb=$(printf '%s\n' "${B_BYTES[@]}" | median)
dm=$(printf '%s\n' "${D_MS[@]}" | median); db=$(printf '%s\n' "${D_BYTES[@]}" | median)
echo "cold, berth mirror:        ${bm} ms (runs: ${B_MS[*]}), upstream bytes $bb = $(ratio "$bb" "$IMAGE_BYTES")x the image; the mirror's CPU ms: ${B_CPU[*]}"
echo "cold, distribution proxy:  ${dm} ms (runs: ${D_MS[*]}), upstream bytes $db = $(ratio "$db" "$IMAGE_BYTES")x the image; the mirror's CPU ms: ${D_CPU[*]}"
echo "cold wall time berth / distribution: $(ratio "$bm" "$dm")x (target <= 0.5x); upstream bytes berth / image: $(ratio "$bb" "$IMAGE_BYTES")x (target <= 1.05x)"

# Warm: berth's mirror with the image cached vs a berth serving it directly.
MP=$(free_port)
start_berth_mirror "$MP"
skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$MP/bench/img:latest" "dir:$W/warmup"
rm -rf "$W/warmup"
DP=$(free_port)
mkdir -p "$W/direct"
"$BERTH" serve --listen "127.0.0.1:$DP" --root "$W/direct" >/dev/null 2>&1 &
PIDS+=("$!")
wait_port "$DP"
skopeo copy -q --dest-tls-verify=false "oci:$W/layout:latest" "docker://127.0.0.1:$DP/bench/img:latest"
# One pull through PORT; prints its milliseconds.
warm_once() { # PORT
  rm -rf "$O/w"; sync
  local s e
  s=$(date +%s%N)
  skopeo copy -q --src-tls-verify=false "docker://127.0.0.1:$1/bench/img:latest" "dir:$O/w"
  e=$(date +%s%N)
  rm -rf "$O/w"
  echo $(((e - s) / 1000000))
}
# The two alternate, so a change in the machine's load falls on both alike.
WM=(); WD=()
for _ in $(seq "$WARM_RUNS"); do
  WM+=("$(warm_once "$MP")"); WD+=("$(warm_once "$DP")")
done
wm=$(printf '%s\n' "${WM[@]}" | RUNS=$WARM_RUNS median); wd=$(printf '%s\n' "${WD[@]}" | RUNS=$WARM_RUNS median)
stop_mirror
echo "warm pull (median of $WARM_RUNS, alternating): berth mirror ${wm} ms (${WM[*]}) | berth serving directly ${wd} ms (${WD[*]}) | ratio $(ratio "$wm" "$wd")x (target <= 1.1x)"
