#!/usr/bin/env bash
# bench/commit.sh: `commit` of a container that wrote 200 MiB in 2,000 files, berth beside
# docker (a private dockerd, overlay2) and podman (overlay, runc), and `cp` of a 1 GiB file out
# of a container beside plain `cp` of the same file, in one run. Needs root.
#
#   ./bench/commit.sh        # RUNS=5 CP_RUNS=11; BERTH=path/to/berth skips the build
#
# Each round, each tool runs a container that writes 2,000 files of 100 KiB (half random,
# half zeros: text-like data that compresses about 2:1) under /data and exits, then
# `commit` of it is timed, then the first `run --rm IMAGE true` of the committed image (berth
# unpacks the committed layer there, docker and podman during commit, so the sum is shown
# too); the images and containers go before the next tool's turn. The
# tools take turns within a round, so load that drifts falls on all of them alike. cp: one
# berth container holds /big (1 GiB of random bytes); `berth cp box:/big FILE` beside `cp`
# of the container's upper-directory copy of it (the same bytes, page cache warm for both),
# the output deleted between runs, the two taking turns at going first. Prints medians and berth / peer with the issue's targets.
# Everything lives in one temp dir that is removed on exit.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
. bench/lib.sh
bench_needs bench/commit.sh podman docker dockerd python3
bench_berth

W=$(mktemp -d /tmp/bco.XXXXXX)
export BERTH_ROOT=$W/berth
IMG=localhost/bench/busybox:1
D="docker -H unix://$W/d.sock"
P="podman --root $W/podman --runroot $W/podman-run --storage-driver overlay --runtime runc --cgroup-manager cgroupfs --events-backend file"
PODMAN_LIMITS="--ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
DOCKERD_PID=
cleanup() {
  set +e
  trap - EXIT INT TERM
  "$BERTH" ps -aq 2>/dev/null | xargs -r "$BERTH" rm -f >/dev/null 2>&1
  if [ -n "$DOCKERD_PID" ]; then
    $D ps -aq 2>/dev/null | xargs -r $D rm -f >/dev/null 2>&1
    kill "$DOCKERD_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
  fi
  [ -d "$W/podman" ] && $P rm -af -t 0 >/dev/null 2>&1 && $P system reset -f >/dev/null 2>&1
  awk -v w="$W/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

R=$W/rootfs
mkdir -p "$R/bin" "$R/proc" "$R/sys" "$R/dev" "$R/etc" "$R/tmp" "$R/data"
cp /bin/busybox "$R/bin/busybox"
for a in sh head cat seq true sleep; do ln -s busybox "$R/bin/$a"; done
# One 100 KiB file: 50 KiB random, 50 KiB zeros; the container copies it under 2,000 names
# with its index prepended, so no two files are alike.
head -c 51200 /dev/urandom >"$R/seed"
head -c 51200 /dev/zero >>"$R/seed"
tar -C "$R" -cf "$W/rootfs.tar" .
WRITE='for i in $(seq 2000); do { echo $i; cat /seed; } > /data/f$i; done'

"$BERTH" import "$W/rootfs.tar" "$IMG" >/dev/null
$P import -q "$W/rootfs.tar" "$IMG" >/dev/null
bench_dockerd "$W" overlay2
$D import "$W/rootfs.tar" "$IMG" >/dev/null

# lib.sh's timed after a sync: no run pays for the previous one's dirty pages.
timed_synced() {
  sync
  timed "$@"
}

commit_round() {
  "$BERTH" run --name writer --network none "$IMG" sh -c "$WRITE"
  timed_synced berth "$BERTH" commit writer bench/committed:1
  timed run_berth "$BERTH" run --rm --network none bench/committed:1 true
  "$BERTH" rm writer >/dev/null
  "$BERTH" rmi bench/committed:1 >/dev/null
  $D run --name writer --network none "$IMG" sh -c "$WRITE"
  timed_synced docker $D commit writer bench/committed:1
  timed run_docker $D run --rm --network none bench/committed:1 true
  $D rm writer >/dev/null
  $D rmi bench/committed:1 >/dev/null
  $P run --name writer --network none $PODMAN_LIMITS "$IMG" sh -c "$WRITE"
  timed_synced podman $P commit -q writer bench/committed:1
  timed run_podman $P run --rm --network none $PODMAN_LIMITS bench/committed:1 true
  $P rm writer >/dev/null
  $P rmi bench/committed:1 >/dev/null
}
echo "commit of a container that wrote 200 MiB in 2,000 files; median of $RUNS rounds (after 1 warm-up)"
commit_round
rm -f "$W"/t.*
for _ in $(seq "$RUNS"); do commit_round; done

# cp: 1 GiB out of a stopped container, and the same file copied by cp.
"$BERTH" run --name box --network none "$IMG" sh -c 'head -c 1073741824 /dev/urandom > /big'
UPPER=$BERTH_ROOT/containers/$("$BERTH" inspect -f '{{.Id}}' box)/upper/big
[ -f "$UPPER" ] || { echo "no $UPPER" >&2; exit 1; }
cat "$UPPER" >/dev/null
# Each round times both; which goes first alternates, so neither always follows the other's
# deletion or pays for what it left behind. CP_RUNS rounds (cheap: the file is in page cache).
CP_RUNS=${CP_RUNS:-11}
cp_one() {
  case $1 in
    berth) timed_synced berth_cp "$BERTH" cp box:/big "$W/out" ;;
    cp) timed_synced cp cp "$UPPER" "$W/out" ;;
  esac
  rm -f "$W/out"
}
cp_round() {
  if [ $(($1 % 2)) = 0 ]; then cp_one berth; cp_one cp; else cp_one cp; cp_one berth; fi
}
cp_round 0
rm -f "$W"/t.berth_cp "$W"/t.cp
for i in $(seq "$CP_RUNS"); do cp_round "$i"; done

python3 - "$W" <<'EOF'
import statistics, sys
w = sys.argv[1]
med = {}
for k, label in [("berth", "berth commit"), ("docker", "docker commit (overlay2)"),
                 ("podman", "podman commit (overlay)"),
                 ("run_berth", "berth run (first, after)"), ("run_docker", "docker run (first, after)"),
                 ("run_podman", "podman run (first, after)"),
                 ("berth_cp", "berth cp box:/big FILE"), ("cp", "cp UPPER/big FILE")]:
    t = sorted(int(x) / 1000 for x in open(f"{w}/t.{k}"))
    med[k] = statistics.median(t)
    print(f"  {label:28} median {med[k]:8.1f} ms   min {t[0]:8.1f}   max {t[-1]:8.1f}")
faster = min(med["docker"], med["podman"])
print(f"  berth / docker = {med['berth'] / med['docker']:5.2f}x   berth / podman = {med['berth'] / med['podman']:5.2f}x")
print(f"  berth / the faster of the two = {med['berth'] / faster:5.2f}x   (target <= 0.7x)")
both = {k: med[k] + med["run_" + k] for k in ("berth", "docker", "podman")}
print(f"  commit + first run of the image: berth / the faster of the two = "
      f"{both['berth'] / min(both['docker'], both['podman']):5.2f}x   (no target; berth unpacks"
      f" the committed layer at its first run)")
print(f"  berth cp / cp = {med['berth_cp'] / med['cp']:5.2f}x   (target <= 1.2x)")
EOF
