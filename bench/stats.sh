#!/usr/bin/env bash
# bench/stats.sh: `stats --no-stream` over N running containers, berth beside podman, in one
# run, on the same busybox image; prints the hyperfine medians and berth / podman (target
# <= 0.3x). Needs root.
#
#   ./bench/stats.sh          # STATS_CONTAINERS=50 RUNS=20; BERTH=path/to/berth skips the build
#
# Each tool starts N detached `sleep 1000` containers (--network none; podman with runc:
# crun refuses hybrid cgroup hosts), then `stats --no-stream` is timed under hyperfine, then
# the containers go. Everything lives in one temp dir that is removed on exit.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
N=${STATS_CONTAINERS:-50}
RUNS=${RUNS:-20}
. bench/lib.sh
bench_needs bench/stats.sh podman hyperfine python3
bench_berth

W=$(mktemp -d /tmp/bst.XXXXXX)
export BERTH_ROOT=$W/berth
IMG=localhost/bench/busybox:1
P="podman --root $W/podman --runroot $W/podman-run --runtime runc"
# root here lacks CAP_SYS_RESOURCE and has 20000 open files at most
PODMAN_LIMITS="--ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
cleanup() {
  set +e
  trap - EXIT INT TERM
  "$BERTH" ps -aq 2>/dev/null | xargs -r "$BERTH" rm -f >/dev/null 2>&1
  [ -d "$W/podman" ] && $P rm -af -t 0 >/dev/null 2>&1
  awk -v w="$W/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

R=$W/rootfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/etc" "$R/tmp"
cp /bin/busybox "$R/bin/busybox"
for a in sh sleep; do ln -s busybox "$R/bin/$a"; done
tar -C "$R" -cf "$W/rootfs.tar" .
"$BERTH" import "$W/rootfs.tar" "$IMG" >/dev/null
$P import -q "$W/rootfs.tar" "$IMG" >/dev/null

start() { # CLI [RUN FLAGS]: N detached sleepers, checked with the tool's own stats
  local cli=$1 flags=${2:-} i n
  for i in $(seq "$N"); do
    $cli run -d --network none $flags --name "st$i" "$IMG" sleep 1000 >/dev/null
  done
  n=$($cli stats --no-stream --format '{{.Name}}' | grep -c '^st')
  [ "$n" = "$N" ] || { echo "$cli stats shows $n containers, not $N" >&2; exit 1; }
}
hyper_ms() { # KEY COMMAND: the hyperfine median in ms, kept in $W/t.KEY
  hyperfine -N -w 2 -r "$RUNS" --export-json "$W/h.json" "$2" >/dev/null 2>&1 ||
    { echo "failed: $2" >&2; $2 >&2; exit 1; }
  python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["results"][0]
open(sys.argv[2], "w").write("%.3f" % (r["median"] * 1e3))
print("  %-28s median %8.1f ms (mean %.1f ± %.1f)" % (sys.argv[3], r["median"] * 1e3, r["mean"] * 1e3, r["stddev"] * 1e3))' \
    "$W/h.json" "$W/t.$1" "$1 stats --no-stream"
}

echo "stats --no-stream over $N running containers (hyperfine median of $RUNS; target berth <= 0.3x podman)"
start "$BERTH"
start "$P" "$PODMAN_LIMITS"
# Both tools' containers run during both measurements: the host is the same for each.
hyper_ms berth "$BERTH stats --no-stream"
hyper_ms podman "$P stats --no-stream"
python3 - "$W" <<'EOF'
import sys
t = lambda k: float(open(f"{sys.argv[1]}/t.{k}").read())
print(f"  berth / podman = {t('berth') / t('podman'):.3f}x")
EOF
