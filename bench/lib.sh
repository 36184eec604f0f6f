# Shared by the benchmarks that run berth beside docker and podman: sourced, never run.

# bench_needs SCRIPT TOOL…: root, each peer on PATH, and a static /bin/busybox (the image).
bench_needs() {
  local script=$1 t
  shift
  [ "$(id -u)" = 0 ] || { echo "$script needs root" >&2; exit 1; }
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "missing $t (scripts/test.sh installs the peers)" >&2; exit 1; }
  done
  if [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; then :; else
    echo "need a static /bin/busybox: apt-get install busybox-static" >&2; exit 1
  fi
}

# bench_berth: BERTH as given, else a release build of this checkout; an absolute path.
bench_berth() {
  if [ -z "${BERTH:-}" ]; then
    cargo build --release -q --bin berth
    BERTH=${CARGO_TARGET_DIR:-$PWD/target}/release/berth
  fi
  BERTH=$(realpath "$BERTH")
}

# bench_dockerd DIR STORAGE_DRIVER: a private dockerd under DIR (socket DIR/d.sock, no bridge,
# no iptables), waited for; sets DOCKERD_PID for the caller's cleanup.
bench_dockerd() {
  local w=$1 driver=$2 _
  dockerd --data-root "$w/docker" --exec-root "$w/dx" --pidfile "$w/d.pid" -H "unix://$w/d.sock" \
    --storage-driver "$driver" --bridge none --iptables=false --ip-masq=false >"$w/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 300); do docker -H "unix://$w/d.sock" version >/dev/null 2>&1 && break; sleep 0.2; done
  docker -H "unix://$w/d.sock" version >/dev/null 2>&1 \
    || { echo "dockerd did not start:" >&2; tail "$w/dockerd.log" >&2; exit 1; }
}

# The helpers below work in the caller's $W (its temp dir).

# bench_crun_ns: a mount namespace of our own, kept in $W/ns/mnt, for crun: crun 1.8 refuses a
# hybrid host (cgroup2 at /sys/fs/cgroup/unified beside v1 controllers), so in it that mount
# is gone.
bench_crun_ns() {
  mkdir "$W/ns"
  mount --bind "$W/ns" "$W/ns"
  mount --make-private "$W/ns"
  touch "$W/ns/mnt"
  if [ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ] &&
    [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    unshare --mount="$W/ns/mnt" --propagation private umount /sys/fs/cgroup/unified
  else
    unshare --mount="$W/ns/mnt" --propagation private true
  fi
}

# timed NAME COMMAND…: one timed run, in microseconds, appended to $W/t.NAME; a failure ends
# the benchmark.
timed() {
  local name=$1 s e
  shift
  s=${EPOCHREALTIME/./}
  "$@" >/dev/null 2>"$W/err" || { echo "$name failed: $*" >&2; cat "$W/err" >&2; exit 1; }
  e=${EPOCHREALTIME/./}
  echo $((e - s)) >>"$W/t.$name"
}

# timed_crun NAME BUNDLE ID: the same for `crun run` inside bench_crun_ns's namespace (its
# state in $W/tmpfs/crun); the clock runs there too, so nsenter is not counted.
timed_crun() {
  nsenter --mount="$W/ns/mnt" bash -c 's=${EPOCHREALTIME/./}
    crun --root "$1/tmpfs/crun" run -b "$3" "$4" >/dev/null 2>"$1/err" || { cat "$1/err" >&2; exit 1; }
    e=${EPOCHREALTIME/./}; echo $((e - s)) >>"$1/t.$2"' _ "$W" "$1" "$2" "$3" ||
    { echo "crun run failed" >&2; exit 1; }
}
