#!/usr/bin/env bash
# bench/rootless.sh: rootless container start, berth beside rootless podman, in one run, as one
# ordinary user made for the run (useradd, a range in /etc/subuid and /etc/subgid).
#
#   ./bench/rootless.sh      # RUNS=21; BERTH=path/to/berth skips the build
#
# Each round times `run --rm bb true` with each tool's default rootless network (berth: pasta;
# podman 4: slirp4netns) and again with `--network none`, the tools taking turns so that load
# that drifts falls on both alike. podman runs with runc (its crun refuses this project's hybrid
# cgroup hosts) and its own storage under the user's home. Prints medians and berth / podman.
# Needs root (to make the user); the user, their processes and files go at the end.
set -euo pipefail
export LC_ALL=C # EPOCHREALTIME with a '.'
cd "$(dirname "$0")/.."
RUNS=${RUNS:-21}
. bench/lib.sh
bench_needs bench/rootless.sh podman runc runuser useradd newuidmap pasta slirp4netns python3
bench_berth

W=$(mktemp -d /tmp/brl.XXXXXX)
chmod 755 "$W"
U=brlbench$$
# pasta and slirp4netns open /dev/net/tun as the user: 0666, as udev makes it on Debian.
chmod 666 /dev/net/tun
useradd --no-create-home --home-dir "$W/home" --shell /bin/sh "$U"
mkdir -p "$W/home" "$W/run"
chown "$U" "$W/home" "$W/run"
chmod 700 "$W/run"
for r in $(awk -F: -v u="$U" '$1 == u { print $2 "-" $2 + $3 - 1 }' /etc/subuid); do
  usermod --del-subuids "$r" --del-subgids "$r" "$U"
done
START=$((4000000 + (RANDOM % 1000) * 65536))
usermod --add-subuids "$START-$((START + 65535))" --add-subgids "$START-$((START + 65535))" "$U"

as_user() {
  runuser -u "$U" -- env -i HOME="$W/home" XDG_RUNTIME_DIR="$W/run" \
    PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "$@"
}
P="podman --runtime runc --cgroup-manager cgroupfs"
cleanup() {
  set +e
  trap - EXIT INT TERM
  as_user "$BERTH" ps -aq 2>/dev/null | xargs -r as_user "$BERTH" rm -f >/dev/null 2>&1
  as_user $P rm -af -t 0 >/dev/null 2>&1
  as_user $P system migrate >/dev/null 2>&1
  [ -f "$W/run/berth/pause.pid" ] && kill -9 "$(cut -d' ' -f1 "$W/run/berth/pause.pid")" 2>/dev/null
  # podman's pause process, by the pid it recorded.
  for f in "$W"/run/libpod/tmp/pause.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  sleep 0.2
  usermod --del-subuids "$START-$((START + 65535))" --del-subgids "$START-$((START + 65535))" "$U" 2>/dev/null
  userdel "$U" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The image: a static busybox, as a tar, imported by each tool as the user.
R=$W/rootfs
mkdir -p "$R/bin" "$R/etc" "$R/tmp"
cp /bin/busybox "$R/bin/"
for a in sh true echo; do ln -s busybox "$R/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
tar -C "$R" -cf "$W/bb.tar" .
chown "$U" "$W/bb.tar"
as_user "$BERTH" import "$W/bb.tar" bb >/dev/null
as_user $P import -q "$W/bb.tar" localhost/bb >/dev/null

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
time_one() { # prints the milliseconds COMMAND… took; fails the run if it fails
  local t0=$EPOCHREALTIME
  "$@" >/dev/null || { echo "failed: $*" >&2; exit 1; }
  echo "$t0 $EPOCHREALTIME" | awk '{ printf "%.2f\n", ($2 - $1) * 1000 }'
}
# One of each, untimed: the pause processes and caches exist before the rounds.
as_user "$BERTH" run --rm bb true
as_user $P run --rm localhost/bb true
declare -A T
for i in $(seq "$RUNS"); do
  T[berth]+="$(time_one as_user "$BERTH" run --rm bb true) "
  T[podman]+="$(time_one as_user $P run --rm localhost/bb true) "
  T[berth_none]+="$(time_one as_user "$BERTH" run --rm --network none bb true) "
  T[podman_none]+="$(time_one as_user $P run --rm --network none localhost/bb true) "
done
echo "rootless run --rm bb true, median of $RUNS (ms):"
declare -A M
for k in berth podman berth_none podman_none; do
  M[$k]=$(tr ' ' '\n' <<<"${T[$k]}" | grep . | median)
  printf '  %-12s %8.1f\n' "$k" "${M[$k]}"
done
awk -v b="${M[berth]}" -v p="${M[podman]}" -v bn="${M[berth_none]}" -v pn="${M[podman_none]}" 'BEGIN {
  printf "berth / podman, default network (pasta vs slirp4netns): %.2fx\n", b / p
  printf "berth / podman, --network none:                        %.2fx\n", bn / pn
}'
