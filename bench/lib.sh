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
